"""Reference trajectories of the Lotka-Volterra predator-prey system."""

from __future__ import annotations

import numpy as np
import xarray as xr

from physode.checks import check_real, check_real_array, check_time_array

from .reference import reference_dataset


def lotka_volterra(
    alpha: float = 1.5, beta: float = 1.0, gamma: float = 3.0, delta: float = 1.0, t=None, *,
    prey=(1.0,), predator=(1.0,), saturation: float = 0.0, noise: float = 0.0, seed: int = 0,
) -> xr.Dataset:
    """x' = alpha x - beta x y / (1 + s x), y' = -gamma y + delta x y / (1 + s x), one series per
    initial (prey, predator); s = `saturation` is the predator's handling time (Holling's type II
    functional response; s = 0 is the classical model). Solved by scipy's DOP853 at
    rtol = atol = 1e-12; a Dataset (series, time)."""
    t = np.linspace(0.0, 10.0, 101) if t is None else check_time_array("t", t, minimum=2, increasing=True)
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("delta", delta), ("saturation", saturation)):
        check_real(name, value, positive=False)

    def rhs(_, y):
        x, p = y
        encounters = x * p / (1.0 + saturation * x)
        return [alpha * x - beta * encounters, -gamma * p + delta * encounters]

    initial = {name: np.atleast_1d(check_real_array(name, value, finite=True))
               for name, value in (("prey", prey), ("predator", predator))}
    ds = reference_dataset(rhs, initial, t, {"prey": (), "predator": ()}, noise=noise, seed=seed)
    ds.attrs.update({"alpha": alpha, "beta": beta, "gamma": gamma, "delta": delta, "saturation": saturation})
    return ds
