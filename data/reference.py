"""Reference trajectories: scipy's DOP853 at tight tolerance, packed as physode datasets."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

from physode.checks import check_count, check_real, check_real_array, check_time_array


def reference_dataset(
    rhs: Callable[[float, np.ndarray], np.ndarray], initial: Mapping[str, np.ndarray], t, dims: Mapping[str, tuple],
    *, noise: float = 0.0, seed: int = 0, units: Mapping[str, str] | None = None, rtol: float = 1e-12, atol: float = 1e-12,
) -> xr.Dataset:
    """Integrate dy/dt = rhs(t, y) from each series' initial state and return a Dataset.

    `initial` maps state names to arrays (series, *shape); rhs acts on one series' flattened
    state, in the order of `initial`. Gaussian noise of standard deviation `noise` is added to
    every value (seeded).
    """
    t = check_time_array("t", t, minimum=2, increasing=True)
    check_real("noise", noise, positive=False)
    check_count("seed", seed, minimum=0)
    initial = {name: check_real_array(name, value, finite=True) for name, value in initial.items()}
    names = list(initial)
    counts = {name: value.shape[0] if value.ndim else 0 for name, value in initial.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise ValueError(f"the initial values must give the same positive number of series for each state, got {counts}")
    shapes = [initial[n].shape[1:] for n in names]
    sizes = [int(np.prod(s)) for s in shapes]
    count = counts[names[0]]
    paths = []
    for k in range(count):
        y0 = np.concatenate([initial[n][k].reshape(-1) for n in names])
        sol = solve_ivp(rhs, (t[0], t[-1]), y0, method="DOP853", t_eval=t, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"reference solution failed for series {k}: {sol.message}")
        paths.append(sol.y.T)
    stacked = np.stack(paths)  # (series, time, flat state)
    rng = np.random.default_rng(seed)
    if noise:
        stacked = stacked + noise * rng.standard_normal(stacked.shape)
    variables, offset = {}, 0
    for name, shape, size in zip(names, shapes, sizes):
        values = stacked[:, :, offset:offset + size].reshape(count, len(t), *shape)
        attrs = {"units": units[name]} if units and name in units else {}
        variables[name] = xr.Variable(("series", "time", *dims[name]), values, attrs)
        offset += size
    return xr.Dataset(variables, coords={"series": np.arange(count), "time": t})

