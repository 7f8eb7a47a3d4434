"""One batched solve for series observed at different times: on the union of their times, or on
per-series rescaled time, where each series runs over its own span only."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..checks import check_params
from ..odeint import Solution, solve
from ..solve import StateTensors

GRIDS = ("auto", "union", "rescaled")


def integrate_series(func: Callable, y0: StateTensors, times: Tensor, observed: Tensor, *,
                     start: Tensor | None = None, grid: str = "auto", **solver) -> StateTensors:
    """The states y (series, T, ...) of `solve_series` at `times`."""
    return solve_series(func, y0, times, observed, start=start, grid=grid, **solver).ys


def solve_series(func: Callable, y0: StateTensors, times: Tensor, observed: Tensor, *, start: Tensor | None = None,
                 grid: str = "auto", **solver) -> Solution:
    """Solve dy/dt = func(t, y) for a batch of series; a Solution with `times`, y (series, T, ...)
    at them and the work counts of the one solve.

    y0: the state of every series (series, ...) (or a tuple of such) at its start; `times` (T,)
    the batch's union of times; `observed` (series, T) bool, the times each series needs;
    `start` (series,) each series' start (default: times[0] for all). `grid`:

    - "union": one solve over the union times from the common start; every series takes every
      step, over the whole span of the batch. Needs a common start.
    - "rescaled": s in [0, 1] and t_i(s) = a_i + s (b_i - a_i) for series i running from a_i to its
      last needed time b_i, so dy_i/ds = (b_i - a_i) func(t_i(s), y_i); one solve to the union of
      the s values. func then receives per-series times, shape (series, 1, ...), broadcastable
      against y.
    - "auto": "union" when every series starts and ends at the same time, else "rescaled": the
      faster of the two in benchmarks/irregular.py (docs/benchmarks.md).

    Entries a series does not need are zero.

    `solver` keywords go to physode.solve.
    """
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    series = (y0[0] if isinstance(y0, tuple) else y0).shape[0]
    if observed.shape != (series, len(times)):
        raise ValueError(f"observed must be (series={series}, T={len(times)}), got {tuple(observed.shape)}")
    needed = observed.any(dim=0)
    if start is None:
        start = times[0].expand(series)
    elif start.shape != (series,):
        raise ValueError(f"start must hold one time per series ({series}), got shape {tuple(start.shape)}")
    if bool((observed & (times[None, :] < start[:, None])).any()):
        raise ValueError("every series' start must come at or before its first needed time")
    end = torch.where(observed, times[None, :].to(start.dtype), start[:, None]).amax(dim=1)
    if grid == "auto":
        grid = "union" if bool((start == start[0]).all() & (end == end[0]).all()) else "rescaled"
    if grid == "union":
        if bool((start != start[0]).any()):
            raise ValueError("grid='union' needs every series to start at the same time; use grid='rescaled'")
        outputs = torch.cat([start[:1], times[needed]]) if bool(start[0] < times[needed][0]) else times[needed]
        solution = solve(func, y0, outputs, **solver)
        ys = _scatter(_map(solution.ys, lambda y: y[len(outputs) - int(needed.sum()):].movedim(0, 1)), needed, len(times))
        return Solution(times, _map(ys, lambda y: _zero_unneeded(y, observed)), solution.stats)
    times = times.to(start.dtype)
    length = (end - start).clamp_min(torch.finfo(start.dtype).tiny)
    s = ((times[None, :] - start[:, None]) / length[:, None]).clamp(0, 1)
    grid_s, where = torch.unique(torch.where(observed, s, torch.zeros_like(s)), return_inverse=True)
    if bool(grid_s[0] > 0):
        grid_s, where = torch.cat([grid_s.new_zeros(1), grid_s]), where + 1
    field = _Rescaled(func, start, length)
    solution = solve(field, y0, grid_s, params=check_params(func, solver.pop("params", None)), **solver)
    series_index = torch.arange(series, device=observed.device)[:, None].expand_as(where)
    return Solution(times, _map(solution.ys, lambda y: _zero_unneeded(y[where, series_index], observed)), solution.stats)


class _Rescaled:
    """d y / d s = (b - a) func(a + s (b - a), y) per series."""

    def __init__(self, func: Callable, start: Tensor, length: Tensor):
        self.func, self.start, self.length = func, start, length

    def __call__(self, s: Tensor, y: StateTensors) -> StateTensors:
        reference = y[0] if isinstance(y, tuple) else y
        shape = (-1, *[1] * (reference.ndim - 1))
        t = (self.start + s * self.length).reshape(shape)
        return _map(self.func(t, y), lambda f: f * self.length.reshape(shape).to(f.dtype))


def _zero_unneeded(y: Tensor, observed: Tensor) -> Tensor:
    if bool(observed.all()):
        return y
    return torch.where(observed.reshape(*observed.shape, *[1] * (y.ndim - 2)), y, torch.zeros_like(y))


def _map(value: StateTensors, fn: Callable[[Tensor], Tensor]) -> StateTensors:
    return tuple(fn(v) for v in value) if isinstance(value, tuple) else fn(value)


def _scatter(value: StateTensors, needed: Tensor, count: int) -> StateTensors:
    """(series, needed times, ...) -> (series, count, ...) with zeros at the times nobody needs."""
    if bool(needed.all()):
        return value

    def spread(v: Tensor) -> Tensor:
        full = v.new_zeros(v.shape[0], count, *v.shape[2:])
        full[:, needed] = v
        return full

    return _map(value, spread)
