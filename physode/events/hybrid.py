"""Hybrid systems: continuous flow between events, and at each event a record, a stop, or a reset
map y+ = reset(t*, y-) after which the flow restarts; differentiable through the event times and
the reset maps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ..checks import check_count, check_state, check_times
from ..grad import GradientMethod
from ..solve import StateLayout, StateTensors, Stats
from .guard import Event, Guards, signs_of
from .segment import Solver, run_segment


@dataclass
class HybridSolution:
    """The result of `solve_hybrid`.

    `ts`, `ys`: the output times reached (all of t, or those before a stop) and the states there,
    shape (len(ts), *y0.shape); at an event time the state after its reset. `event_ts` (K,), the
    event times in order, `event_ys` (K, *y0.shape), the states at them before any reset, and
    `event_ids`, the index in `events` of each; all differentiable. `segment_stats`: the work of
    each segment between restarts (search and replay; accepted steps counted once), summed by `stats`.
    """

    ts: Tensor
    ys: StateTensors
    event_ts: Tensor
    event_ys: StateTensors
    event_ids: list[int]
    segment_stats: list[Stats]

    @property
    def stats(self) -> Stats:
        total = Stats()
        for part in self.segment_stats:
            for field in fields(Stats):
                value = getattr(part, field.name)
                setattr(total, field.name, None if value is None else getattr(total, field.name) + value)
        return total


def solve_hybrid(
    func: Callable, y0: StateTensors, t: Tensor | Sequence[float], events: Sequence[Event] | Event, *,
    max_events: int | None = None, method: str = "dopri5", rtol: float | Tensor = 1e-6, atol: float | Tensor = 1e-8,
    gradient: str | GradientMethod = "aca", options: dict | None = None, params: Sequence[Tensor] | None = None,
) -> HybridSolution:
    """Solve a hybrid system from y(t[0]) = y0 to t[-1]: dy/dt = func(t, y) between events, and at
    each event (the zero crossings of its guard, in its direction) a record, a stop (terminal), or
    a restart from y+ = reset(t*, y-). `events` is a sequence of Event (or one); `max_events` stops
    the integration at that many events.

    Events are located on each step's dense output to round-off in t and made differentiable by the
    implicit function theorem, dt*/dtheta = -(dg/dtheta) / (dg/dt) (Chen, Amos & Nickel, ICLR 2021),
    so gradients reach y0, t, the parameters of func (as in `physode.odeint`) and whatever the guards
    and reset maps depend on. The solver arguments are odeint's; gradient "aca" or "direct".
    """
    solver = Solver(func, method, rtol, atol, gradient, options, params)
    y0 = check_state(y0)
    layout = StateLayout(y0)
    flat = layout.flatten(y0)
    times = check_times(t, flat)
    if len(times) < 2:
        raise ValueError(f"t must hold a start and an end time, got {len(times)} time")
    max_events = check_count("max_events", max_events, allow_none=True)
    guards = Guards.from_events(events, layout)
    direction = 1.0 if times[-1] > times[0] else -1.0
    values = times.tolist()

    start, y, signs = times[0], y0, signs_of(guards.values(times[0], flat))
    outputs: list[Tensor] = []
    event_ts, event_ys, event_ids, stats = [], [], [], []
    steps_left = None
    while True:
        while len(outputs) < len(values) and values[len(outputs)] == start.item():
            outputs.append(flat)
        if start.item() == values[-1]:
            break
        events_left = None if max_events is None else max_events - len(event_ids)
        plan, replayed, problem = run_segment(solver, y, start, direction, guards, signs, times[-1],
                                              list(times[len(outputs):].unbind(0)), events_left, steps_left)
        steps_left = (problem.max_steps if steps_left is None else steps_left) - (len(plan.grid) - 1)
        outputs += replayed.outputs
        event_ts += replayed.event_times
        event_ys += replayed.event_states
        event_ids += [c.event for c in plan.crossings]
        stats.append(problem.stats)
        fired = event_ids[-1] if plan.stopped else None
        if fired is None or guards.resets[fired] is None or len(event_ids) == max_events:
            break
        start = event_ts[-1]
        y = _reset(guards.resets[fired], fired, start, layout.unflatten(event_ys[-1]), layout)
        flat = layout.flatten(y)
        signs = signs_of(guards.values(start, flat))
        signs[fired] = 0

    like = flat
    return HybridSolution(
        ts=times[:len(outputs)],
        ys=layout.unflatten(torch.stack(outputs), len(outputs)),
        event_ts=torch.stack(event_ts) if event_ts else like.new_empty(0),
        event_ys=layout.unflatten(torch.stack(event_ys) if event_ys else like.new_empty(0, *like.shape), len(event_ys)),
        event_ids=event_ids, segment_stats=stats,
    )


def _reset(reset: Callable, index: int, t: Tensor, y: StateTensors, layout: StateLayout) -> StateTensors:
    """reset(t, y) checked to be a state like y0."""
    new = reset(t, y)
    name = f"events[{index}].reset"
    pieces = list(new) if layout.is_tuple and isinstance(new, (tuple, list)) else [new]
    if not all(isinstance(p, Tensor) for p in pieces) or len(pieces) != len(layout.shapes):
        raise TypeError(f"{name} must return a state like y0 ({len(layout.shapes)} tensor(s)), got {type(new).__name__}")
    for piece, shape in zip(pieces, layout.shapes):
        if piece.shape != shape:
            raise ValueError(f"{name} returned shape {tuple(piece.shape)} where y0 has shape {tuple(shape)}")
        if not bool(torch.isfinite(piece).all()):
            raise ValueError(f"{name} returned non-finite values at t={t.item():.10g}")
    return tuple(pieces) if layout.is_tuple else pieces[0]
