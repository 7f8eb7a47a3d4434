"""The stepping loop: accepted steps on the clock's grid, outputs by dense output or at anchors."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .clock import SEGMENT_END, SEGMENT_START, Clock, Node
from .control import StepControl, error_ratio, initial_step
from .errors import SolverError
from .grid import Grid
from .stats import Stats
from .stepper import Stepper

_LAND_TOLERANCE = 1e-9  # a step reaching within this fraction of h of an anchor is stretched to it


def integrate(
    func: Callable, stepper: Stepper, y0: Tensor, f0: Tensor, clock: Clock, control: StepControl,
    stats: Stats, keep: Callable[[int, Tensor, Tensor | None], None] | None = None,
) -> tuple[list[Tensor], Grid]:
    """Integrate from the first to the last anchor; return the outputs at clock.times and the grid.

    f0 = f(t0, y0) (ALF's initial velocity). With control.step_size the steps are fixed, else the
    stepper's error estimate controls them. func is evaluated only inside [t[0], t[-1]]. The
    step-size search reads errors as Python floats and never enters a graph; whatever graph the
    step computations build is the caller's. keep(i, y_i, v_i) is called at every accepted node
    i = 0..N, with v_i the carried vector when it is state (ALF), else None.
    """
    anchors, times = clock.anchor_values, clock.time_values
    outputs: list[Tensor | None] = [None] * len(times)
    outputs[clock.anchor_outputs[0]] = y0
    adaptive = control.step_size is None
    grid = Grid(adaptive)
    if len(anchors) < 2:
        return outputs, grid
    direction = 1.0 if anchors[-1] > anchors[0] else -1.0
    q = stepper.error_exponent_order
    eps = torch.finfo(y0.dtype).eps
    length = abs(anchors[-1] - anchors[0])

    def carried(f: Tensor | None) -> Tensor | None:
        return f if stepper.carry_is_state else None

    if not adaptive:
        h = control.step_size
    elif control.first_step is not None:
        h = control.first_step
    else:
        h = initial_step(
            func, anchors[0], y0, f0, direction, q, control.rtol, control.atol,
            limit=min(length, control.max_step),
        )
    t, y, f = anchors[0], y0, f0
    if keep is not None:
        keep(0, y, carried(f))
    segment, node = 0, SEGMENT_START
    next_output = clock.interior.start
    err_previous, after_rejection = 1.0, False  # no history before the first step

    while segment < len(anchors) - 1:
        a0, a1 = anchors[segment], anchors[segment + 1]
        h_wanted = min(h, control.max_step)
        remaining = abs(a1 - t)
        if remaining <= h_wanted * (1 + _LAND_TOLERANCE):
            t1, end, h_used = a1, SEGMENT_END, remaining
        else:
            t1, h_used = t + direction * h_wanted, h_wanted
            end = Node((t1 - a0) / (a1 - a0)) if adaptive else Node(0.0, t1 - a0)
        span = clock.span(segment, node, end)
        y1, ks = stepper.step(func, span, y, f)

        if adaptive:
            with torch.no_grad():
                err = error_ratio(stepper.error(span.h, ks), y, y1, control.rtol, control.atol).item()
            if not err <= 1.0:
                stats.rejected += 1
                after_rejection = True
                h = h_used * control.controller.rejected(err, q)
                resolution = abs(a0) * (1 - node.s) + abs(a1) * node.s + abs(node.offset)
                if h < 4 * eps * max(resolution, eps * length):
                    reason = "non-finite state" if not math.isfinite(err) else "step size underflow"
                    raise SolverError(
                        reason, t, len(grid),
                        hint=f"step size shrank to {h:.3g}; the problem may be stiff or the vector field singular there",
                    )
                continue
        elif not bool(torch.isfinite(y1).all()):
            raise SolverError("non-finite state", t1, len(grid), hint=f"step size {h_used:.3g} may be too large")

        f = ks[-1] if stepper.carries else None

        first = next_output
        while next_output < clock.interior.stop and (times[next_output] - t1) * direction <= 0:
            next_output += 1
        grid.append(segment, end, slice(first, next_output))
        if next_output > first:
            if stepper.interpolant_needs_end_derivative and f is None:
                f = func(span.t1, y1)
            inside = stepper.interpolate(clock.theta(slice(first, next_output), span), y, y1, span.h, ks, f)
            outputs[first:next_output] = list(inside.unbind(0))

        stats.accepted += 1
        if adaptive:
            factor = control.controller.accepted(err, err_previous, q, after_rejection)
            h = max(h_used * factor, h_wanted) if end == SEGMENT_END and h_used < h_wanted else h_used * factor
            err_previous, after_rejection = max(err, 1e-4), False
        t, node, y = t1, end, y1
        if keep is not None:
            keep(len(grid), y, carried(f))
        if end == SEGMENT_END:
            segment, node = segment + 1, SEGMENT_START
            outputs[clock.anchor_outputs[segment]] = y
        if len(grid) >= control.max_steps and segment < len(anchors) - 1:
            raise SolverError(
                "max_steps exceeded", t, len(grid),
                hint=f"raise options['max_steps'] (now {control.max_steps}) or loosen rtol/atol",
            )
    return outputs, grid
