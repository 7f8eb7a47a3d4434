"""The installed package exposes its subpackages, including the mapped systems/ and data/ folders."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["physode", "physode.solve", "physode.grad", "physode.nn", "physode.systems", "physode.datasets"])
def test_subpackages_import(name):
    assert importlib.import_module(name).__doc__


def test_public_surface():
    import physode

    assert set(physode.__all__) == {
        "MLP", "Constant", "FitError", "FitResult", "GradientMethod", "Jacobian", "Learned", "Parameter", "Sensitivity",
        "Solution", "SolverError", "State", "Stats", "System", "data", "fit", "jacobian", "jvp", "odeint", "solve",
    }
