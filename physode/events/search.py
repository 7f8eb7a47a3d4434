"""The search for events: stepping with the Problem's stepper and controller, without a graph and
with an open end (or up to an end time), checking the guards after every accepted step and
locating the crossings on that step's dense output."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..grad import Problem
from ..solve import LAND_TOLERANCE, SolverError, Span, Trial, attempt
from .guard import Guards, signs_of
from .locate import DenseStep, locate

OPEN_SPAN = 1.0  # with no end time, the controller starts as for a span of this length (torchdiffeq: t0 + 1)


@dataclass
class Crossing:
    """Event `event` at time `t` (the root of its guard along the dense output), with the slope
    dg/dt of its guard along the dense output there and the dense output's `rate` dy/dt."""

    t: float
    event: int
    slope: Tensor
    rate: Tensor


@dataclass
class Plan:
    """A segment as the search found it: the accepted step ends `grid` (t_0 .. t_N), the events it
    recorded in time order, and whether the last of them ends the segment (`stopped`) rather than
    the end time."""

    grid: list[float]
    crossings: list[Crossing]
    stopped: bool


@torch.no_grad()
def search(
    problem: Problem, guards: Guards, signs: list[int], direction: float, t_end: float | None,
    events_left: int | None, steps_left: int,
) -> Plan:
    """Step from (problem.times[0], problem.y0) until an event stops the segment, or to t_end.

    `signs` are the guards' signs at the start (0 where an event has just fired). An event stops
    the segment when it is terminal, has a reset map, or is the last of `events_left`; others are
    recorded on the way. Raises SolverError after `steps_left` accepted steps.
    """
    stepper, controller, func, stats = problem.stepper, problem.controller, problem.func, problem.stats
    callbacks = problem.callbacks
    like = problem.y0
    t, y, f = problem.times[0].item(), problem.y0.detach(), problem.f0.detach()
    length = OPEN_SPAN if t_end is None else abs(t_end - t)
    h, state = controller.init(func, t, y, f, direction, length, stepper.error_order, problem.tolerance)
    grid, recorded = [t], []
    while True:
        remaining = None if t_end is None else abs(t_end - t)
        if remaining is not None and remaining <= h * (1 + LAND_TOLERANCE):
            t1, h_used = t_end, remaining
        else:
            t1, h_used = representable(t + direction * h, like), h
        if t1 == t:
            raise SolverError("step size underflow", t, len(grid) - 1,
                              hint=f"a step of {h:.3g} does not change t in {like.dtype}")
        t0_, t1_ = (torch.as_tensor(x, dtype=like.dtype, device=like.device) for x in (t, t1))
        span = Span(t0_, t1_, t1_ - t0_)
        trial = Trial(t, t1, h, h_used, y, None, None, len(grid) - 1, max(abs(t), abs(t1)))
        accepted, h, state, y1, ks = attempt(func, stepper, controller, state, span, f, trial, callbacks)
        if not accepted:
            stats.rejected += 1
            continue
        grid.append(t1)
        f = stepper.carry(ks)
        values = guards.values(t1_, y1)
        after = signs_of(values)
        crossed = guards.crossed(signs, after)
        if crossed:
            stages = ks + stepper.interpolant_stages(func, span, y, y1, ks)
            f = stepper.carry(stages)
            step = DenseStep(stepper, t, t1, y, stages)
            crossings = sorted((_crossing(step, guards, e, signs[e], values[e]) for e in crossed), key=lambda c: c.t * direction)
            for crossing in crossings:
                recorded.append(crossing)
                e = crossing.event
                if guards.terminal[e] or guards.resets[e] is not None or len(recorded) == events_left:
                    return Plan(grid, recorded, stopped=True)
        if t1 == t_end:
            return Plan(grid, recorded, stopped=False)
        if len(grid) - 1 >= steps_left:
            what = "before an event" if t_end is None else f"before t={t_end:.10g}"
            raise SolverError(f"max_steps exceeded {what}", t1, len(grid) - 1,
                              hint="raise options['max_steps'] or loosen rtol/atol"
                                   + ("; the guard may never cross zero" if t_end is None else ""))
        t, y, signs = t1, y1, after


def _crossing(step: DenseStep, guards: Guards, e: int, sign: int, end_value: float) -> Crossing:
    """Locate event e's crossing inside the step, its guard having `sign` at the step's start and
    `end_value` at its end."""
    like = step.y0

    def value(t: float) -> float:
        return guards(torch.as_tensor(t, dtype=like.dtype, device=like.device), step.state(t))[e].item() * sign

    eps = torch.finfo(like.dtype).eps
    root = representable(locate(value, step.t0, step.t1, value(step.t0), end_value * sign, eps), like)
    rate = step.rate(root)
    with torch.enable_grad():
        t = torch.as_tensor(root, dtype=like.dtype, device=like.device).requires_grad_(True)
        y = step.state(root).requires_grad_(True)
        g = guards(t, y)[e]
        partials = torch.autograd.grad(g, (t, y), allow_unused=True) if g.requires_grad else (None, None)
    slope = sum(((d * r).sum() for d, r in zip(partials, (torch.ones_like(t), rate)) if d is not None),
                torch.zeros((), dtype=like.dtype, device=like.device))
    return Crossing(root, e, slope, rate)


def representable(t: float, like: Tensor) -> float:
    """t rounded to like's dtype, so that the search's times are the replay's to the last bit."""
    return torch.as_tensor(t, dtype=like.dtype).item()
