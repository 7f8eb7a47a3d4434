"""The stepping loop: it steps, asks the controller, records the accepted steps and produces the
outputs by dense output or at the anchors."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from .callbacks import Callbacks
from .clock import SEGMENT_END, SEGMENT_START, Clock, Span
from .control import Controller, Tolerance, Trial
from .errors import SolverError
from .record import StepRecord
from .stats import Stats
from .stepper import Stepper

LAND_TOLERANCE = 1e-9  # a step reaching within this fraction of h of an anchor is stretched to it


def attempt(
    func: Callable, stepper: Stepper, controller: Controller, state, span: Span, f: Tensor | None, trial: Trial,
    callbacks: Callbacks | None,
) -> tuple[bool, float, object, Tensor, list[Tensor]]:
    """One attempted step over `span` from trial.y0 (with the carry f), judged by the controller:
    (accepted, next step size, controller state, y1, stages); the callbacks are told."""
    y = trial.y0
    if callbacks is not None:
        callbacks.before(span.t0, y, span.h)
    y1, ks = stepper.step(func, span, y, f)
    accepted, h, state = controller.adapt(state, trial._replace(y1=y1, error=partial(stepper.error, span.h, ks)))
    if callbacks is not None and controller.adaptive:
        callbacks.judged(accepted, span.t0, y, span.h)
    return accepted, h, state, y1, ks


class Outputs:
    """The states at the output times as the loop produces them: written into one preallocated
    tensor where no graph is built; else kept as a list and stacked at the end (with a graph, each
    write into a buffer would make the backward pass copy the whole buffer's gradient)."""

    def __init__(self, count: int, y0: Tensor):
        self._buffer = None if torch.is_grad_enabled() else y0.new_empty(count, *y0.shape)
        self._states: list[Tensor | None] = [None] * count

    def put(self, index: int | slice, states: Tensor) -> None:
        """The state at output `index`, or the states (k, *shape) at the k outputs of a slice."""
        if self._buffer is not None:
            self._buffer[index] = states
        elif isinstance(index, slice):
            self._states[index] = states.unbind(0)
        else:
            self._states[index] = states

    def stacked(self) -> Tensor:
        return self._buffer if self._buffer is not None else torch.stack(self._states)


def integrate(
    func: Callable, stepper: Stepper, controller: Controller, tolerance: Tolerance, y0: Tensor, f0: Tensor,
    clock: Clock, max_steps: int, stats: Stats, keep: Callable[[int, Tensor, Tensor | None], None] | None = None,
    callbacks: Callbacks | None = None,
) -> tuple[Tensor, StepRecord]:
    """Integrate from the first to the last anchor; return the outputs at clock.times, stacked, and the record.

    f0 = f(t0, y0) (ALF's initial velocity; taken just after t0 when every node is a jump). func is
    evaluated only inside [t[0], t[-1]]. The controller works on Python floats and never enters a
    graph; whatever graph the step computations build is the caller's. keep(i, y_i, c_i) is called
    at every accepted node i = 0..N, with c_i the carry where it is state (ALF's velocity), else
    None. After a step that ends on a jump of the clock, f is evaluated anew at the next step's
    start (after the jump). `callbacks` are told of every attempted step and, where the controller
    judges steps (adaptive ones), of its verdict.
    """
    anchors, times = clock.anchor_values, clock.time_values
    outputs = Outputs(len(times), y0)
    outputs.put(clock.anchor_outputs[0], y0)
    record = StepRecord(controller.placement)
    if len(anchors) < 2:
        return outputs.stacked(), record
    direction = 1.0 if anchors[-1] > anchors[0] else -1.0
    length = abs(anchors[-1] - anchors[0])
    h, state = controller.init(func, anchors[0], y0, f0, direction, length, stepper.error_order, tolerance)
    if not controller.adaptive and length > max_steps * h:
        raise SolverError("max_steps exceeded", anchors[0], 0, hint=f"steps of {h:.3g} from t={anchors[0]:.10g} to "
                          f"{anchors[-1]:.10g} are more than options['max_steps'] ({max_steps}): raise it or the step")
    t, y, f = anchors[0], y0, f0
    if keep is not None:
        keep(0, y, stepper.state_carry(f))
    segment, node = 0, SEGMENT_START
    next_output = clock.interior.start

    while segment < len(anchors) - 1:
        a1 = anchors[segment + 1]
        remaining = abs(a1 - t)
        if remaining <= h * (1 + LAND_TOLERANCE):
            t1, end, h_used = a1, SEGMENT_END, remaining
        else:
            t1, h_used = t + direction * h, h
            end = clock.node(segment, t1, controller.placement)
        span = clock.span(segment, node, end)
        trial = Trial(t, t1, h, h_used, y, None, None, len(record), clock.scale(segment, node))
        accepted, h, state, y1, ks = attempt(func, stepper, controller, state, span, f, trial, callbacks)
        if not accepted:
            stats.rejected += 1
            continue

        f = stepper.carry(ks)
        first = next_output
        while next_output < clock.interior.stop and (times[next_output] - t1) * direction <= 0:
            next_output += 1
        record.append(segment, end, slice(first, next_output))
        if next_output > first:
            stages = ks + stepper.interpolant_stages(func, span, y, y1, ks)
            inside = stepper.interpolate(clock.theta(slice(first, next_output), span), y, span.h, stages)
            outputs.put(slice(first, next_output), inside)
            f = stepper.carry(stages)  # f(t1, y1) where the interpolant evaluated it: the next step's first stage

        stats.accepted += 1
        t, node, y = t1, end, y1
        if keep is not None:
            keep(len(record), y, stepper.state_carry(f))
        if clock.jumps_after(segment, end) and stepper.state_carry(f) is None:
            f = None
        if end == SEGMENT_END:
            segment, node = segment + 1, SEGMENT_START
            if clock.anchor_outputs[segment] is not None:
                outputs.put(clock.anchor_outputs[segment], y)
        if len(record) >= max_steps and segment < len(anchors) - 1:
            raise SolverError(
                "max_steps exceeded", t, len(record),
                hint=f"raise options['max_steps'] (now {max_steps}) or loosen rtol/atol",
            )
    return outputs.stacked(), record
