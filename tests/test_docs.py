"""Every Python code block of README.md and docs/*.md runs as written.

Sybil parses each page and evaluates its blocks in order in one namespace, so a block uses the
names of the blocks above it. A block right after the comment `<!-- slow -->` is slow: by default
a page runs its other blocks, which must not use the slow blocks' names, and `pytest -m slow` runs
every block of each page that has a slow one. A page runs in a directory of its own, with
physode's data cache inside it.
"""

from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SLOW = "<!-- slow -->"
SYBIL = Sybil(parsers=[PythonCodeBlockParser()])


def is_slow(example) -> bool:
    return example.document.text[: example.start].rstrip().endswith(SLOW)


def pages():
    for page in PAGES:
        blocks = list(SYBIL.parse(page).examples())
        name = str(page.relative_to(ROOT))
        if blocks:
            yield pytest.param(page, False, id=name)
        if any(is_slow(block) for block in blocks):
            yield pytest.param(page, True, id=f"{name}, slow blocks included", marks=pytest.mark.slow)


@pytest.mark.parametrize(("page", "slow"), pages())
def test_page(page, slow, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PHYSODE_DATA", str(tmp_path / "data"))
    for block in SYBIL.parse(page).examples():
        if slow or not is_slow(block):
            block.evaluate()
