"""The installed package exposes its subpackages, including the mapped systems/ and data/ folders."""

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["physode", "physode.solve", "physode.grad", "physode.nn", "physode.events",
                                  "physode.systems", "physode.datasets"])
def test_subpackages_import(name):
    assert importlib.import_module(name).__doc__


def test_every_subpackage_is_installed():
    """pyproject lists its packages one by one: a subpackage left out imports here and not when installed."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "physode").rglob("__init__.py")}
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"


def test_public_surface():
    import physode

    assert set(physode.__all__) == {
        "MLP", "Constant", "Event", "FitError", "FitResult", "GradientMethod", "HybridSolution", "Jacobian", "Learned",
        "Parameter", "Sensitivity", "Solution", "SolverError", "State", "Stats", "System", "data", "fit", "jacobian",
        "jvp", "odeint", "odeint_event", "solve", "solve_hybrid",
    }
