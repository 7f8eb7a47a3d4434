"""Differentiable event times: the search's steps retaken by a gradient method, and the event times
by the implicit function theorem on that discrete solution (Chen, Amos & Nickel, "Learning Neural
Event Functions for Ordinary Differential Equations", ICLR 2021, eq. 5)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ..grad import GradientMethod, Problem
from ..solve import SolverError
from .guard import Guards
from .search import Plan


@dataclass(frozen=True)
class Replay:
    """A step-size controller that retakes a search's accepted steps: step i ends at grid[i + 1].

    With the search's last step end as the final anchor, the stepping loop then takes exactly the
    search's steps (no rejections) and produces the event times inside them by the same dense
    output, so the guards vanish at the located times to round-off on the replayed solution too.
    """

    grid: tuple[float, ...]

    placement = "fraction"
    adaptive = False

    def init(self, func, t0, y0, f0, direction, length, q, tolerance) -> tuple[float, None]:
        return abs(self.grid[1] - self.grid[0]), None

    def adapt(self, state: None, trial) -> tuple[bool, float, None]:
        following = self.grid[min(trial.steps + 2, len(self.grid) - 1)]
        return True, abs(following - trial.t1), None


@dataclass
class Replayed:
    """A segment made differentiable: the flat states at the requested output times, and at each
    event the search recorded its time t* and the state there."""

    outputs: list[Tensor]
    event_times: list[Tensor]
    event_states: list[Tensor]


def replay(
    problem: Problem, strategy: GradientMethod, plan: Plan, guards: Guards, outputs: list[Tensor], end: Tensor | None,
) -> Replayed:
    """Retake the search's steps with the gradient method, with outputs at `outputs` (0-d times
    strictly inside the segment, or at its end) and at the events, and make the event times
    differentiable. An output at the same time as an event takes the event's constant time.

    `end` is the end time tensor where the segment ran to it, None where an event stopped it. For
    an event with guard g at the located time tau on the replayed solution y(t; theta),
        t* = tau - (g(tau, y(tau)) - [g]) / [dg/dt],   y(t*) = y(tau) + [dy/dt] (t* - tau),
    where [.] is a value held constant: t* has the value tau and the implicit function theorem's
    derivative dt*/dtheta = -(dg/dtheta) / (dg/dt) (for y0, the parameters of func and of the
    guard, and t0), with dg/dt = g_t + g_y . dy/dt along the dense output.
    """
    like = problem.y0
    start = problem.times[0]
    taus = [torch.as_tensor(c.t, dtype=like.dtype, device=like.device) for c in plan.crossings]
    anchor = end if end is not None else torch.as_tensor(plan.grid[-1], dtype=like.dtype, device=like.device)
    direction = 1.0 if plan.grid[-1] > plan.grid[0] else -1.0
    interior = sorted({t.item(): t for t in [*outputs, *taus] if t.item() != plan.grid[-1]}.items(),
                      key=lambda item: item[0] * direction)
    times = torch.stack([start, *(t for _, t in interior), anchor])
    index = {value: i + 1 for i, (value, _) in enumerate(interior)} | {plan.grid[-1]: len(interior) + 1}
    retaken = dataclasses.replace(problem, times=times, controller=Replay(tuple(plan.grid)), callbacks=None)
    ys = strategy.solve(retaken)

    event_times, event_states = [], []
    for crossing, tau in zip(plan.crossings, taus):
        y = ys[index[crossing.t]]
        g = guards(tau, y)[crossing.event]
        if g.requires_grad:
            if crossing.slope == 0:
                raise SolverError(f"the guard of event {crossing.event} crosses zero with slope dg/dt = "
                                  f"{crossing.slope.item()}", crossing.t, len(plan.grid) - 1,
                                  hint="its time is not differentiable there (a tangential crossing)")
            t_star = tau - (g - g.detach()) / crossing.slope
        else:
            t_star = tau
        event_times.append(t_star)
        event_states.append(y + crossing.rate * (t_star - tau))
    return Replayed([ys[index[t.item()]] for t in outputs], event_times, event_states)
