"""Multiple shooting: windows of the time span, each starting from a fitted state, and when a fit
turns to them on its own (`shooting="auto"`).

A single shooting fit integrates every series from its first time; on long or oscillating
trajectories its loss has many local minima, and a fit from a poor start can stall in one.
Multiple shooting (Bock & Plitt, "A multiple shooting algorithm for direct solution of optimal
control problems", IFAC 1984) starts each window of the span from a fitted state, so that no
integration runs long, and joins the windows by a penalty on their mismatch. A fit is judged
stalled when the root mean square of its residuals exceeds STALLED times the noise level
estimated from the data (`noise_level`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
from torch import Tensor

from ..series.losses import masked_sums
from ..training import mean_of
from .estimates import ShootingNodes

AUTOMATIC_WINDOW = 10  # time intervals per window when a stalled fit turns to multiple shooting
STALLED = 3.0


def windows(count: int, shooting: int) -> list[tuple[int, int]]:
    """(first, last) time indices of windows of `shooting` intervals covering 0..count-1."""
    bounds = list(range(0, count - 1, shooting)) + [count - 1]
    if bounds[-1] - bounds[-2] < 1:
        bounds.pop(-2)
    return list(itertools.pairwise(bounds))


def node_starts(system, estimates, times: Tensor, observed: Mapping[str, Tensor], shooting: int,
                solver: Mapping) -> dict[str, Tensor]:
    """The state of every series at the start of every window after the first, (series,
    windows - 1, *shape) per state: the observation where there is one (as in Bock's method, so
    that each window starts on the data), else a simulation of the system as it stands."""
    spans = windows(len(times), shooting)
    firsts = [first for first, _ in spans[1:]]
    with torch.no_grad():
        path = system.integrate(estimates(), times, **solver)
    starts = {name: values[:, firsts] for name, values in path.items()}
    for name, values in observed.items():
        measured = values[:, firsts]
        starts[name] = torch.where(torch.isfinite(measured), measured, starts[name])
    return starts


def start_nodes(system, estimates, times: Tensor, observed: Mapping[str, Tensor], shooting: int,
                solver: Mapping) -> ShootingNodes:
    """Shooting nodes at the observations, or along a simulation of the initial model where there is none."""
    return ShootingNodes(node_starts(system, estimates, times, observed, shooting, solver))


def shooting_sums(system, start, nodes, batch, times, shooting, penalty, weight, solver) -> Tensor:
    """The sums of the windows' paths on the batch's observations, [the data's masked_sums, the sum
    of the squared mismatches of each window's end with the next window's start, their count],
    whose loss is with_continuity."""
    spans = windows(len(times), shooting)
    pieces: dict[str, list[Tensor]] = {name: [] for name in start}
    mismatch = []
    for k, (first, last) in enumerate(spans):
        begin = start if k == 0 else nodes(batch.index, k)
        path = system.integrate(begin, times[first:last + 1], **solver)
        final = k == len(spans) - 1
        for name, values in path.items():
            pieces[name].append(values if final else values[:, :-1])
        if not final:
            following = nodes(batch.index, k + 1)
            mismatch.append(torch.cat([(path[n][:, -1] - following[n]).reshape(len(batch.index), -1) for n in path], dim=1))
    predicted = {name: torch.cat(values, dim=1) for name, values in pieces.items()}
    data = masked_sums(predicted, batch.observed, penalty, weight)
    gaps = torch.cat(mismatch, dim=1) if mismatch else data.new_zeros(0)
    return torch.cat([data, gaps.square().sum()[None], data.new_tensor([gaps.numel()])])


def with_continuity(continuity: float, sums: Tensor) -> Tensor:
    """The loss of shooting_sums: the data's mean plus `continuity` times the mean squared mismatch."""
    data = mean_of(sums[:2])
    return data + continuity * mean_of(sums[2:]) if continuity else data


def noise_level(observed: Mapping[str, Tensor]) -> float | None:
    """An estimate, from above, of the standard deviation of the observation noise: for each series
    and component, median |second difference| / (0.6745 sqrt(6)) (the second difference of white
    noise of variance s^2 has variance 6 s^2; 0.6745 turns a median absolute value into a
    standard deviation), pooled as the root mean square over components. A smooth signal adds
    its own second difference, h^2 x'', so the estimate errs high. None with fewer than three
    consecutive observed times."""
    levels = []
    for values in observed.values():
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        second = flat[:, 2:] - 2 * flat[:, 1:-1] + flat[:, :-2]
        if second.shape[1] == 0:
            continue
        sigma = second.abs().nanmedian(dim=1).values / (0.6745 * 6**0.5)
        levels.append(sigma[torch.isfinite(sigma)])
    pooled = torch.cat(levels) if levels else torch.empty(0)
    return float(pooled.square().mean().sqrt()) if pooled.numel() else None


def stalled(residual_rms: float, noise: float | None) -> bool:
    """A fit whose residuals stay well above the noise level sits in a local minimum (or its model
    lacks part of the physics)."""
    return noise is not None and residual_rms > STALLED * noise
