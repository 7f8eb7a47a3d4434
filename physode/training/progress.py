"""Progress of long work, as a tqdm bar on stderr."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int, enabled: bool | None = None, *, initial: int = 0, unit: str = "epoch") -> tqdm:
    """A tqdm bar over `total` steps, starting at `initial`. `enabled`: True shows it, False hides
    it, None shows it only when stderr is a terminal (so logs and CI output stay clean)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(total=total, initial=initial, disable=not show, unit=unit, file=sys.stderr, dynamic_ncols=True,
                leave=True)
