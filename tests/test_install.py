"""The installed package exposes its subpackages, including the mapped systems/ and data/ folders."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["physode", "physode.solve", "physode.grad", "physode.systems", "physode.datasets"])
def test_subpackages_import(name):
    assert importlib.import_module(name).__doc__


def test_public_surface():
    import physode

    assert set(physode.__all__) == {"GradientMethod", "Solution", "SolverError", "Stats", "odeint", "solve"}
