"""torchdiffeq's event interface: integrate with no end time until event_fn(t, y) changes sign."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..checks import check_state, check_times
from ..grad import GradientMethod
from ..solve import StateLayout, StateTensors
from .guard import Guards, signs_of
from .segment import Solver, run_segment


def odeint_until_event(
    func: Callable, y0: StateTensors, t: Tensor | Sequence[float], *, event_fn: Callable, method: str = "dopri5",
    rtol: float | Tensor = 1e-6, atol: float | Tensor = 1e-8, gradient: str | GradientMethod = "aca",
    options: dict | None = None, params: Sequence[Tensor] | None = None,
) -> tuple[Tensor, StateTensors]:
    """torchdiffeq's odeint(func, y0, t, event_fn=event_fn): returns (event_t, solution).

    t = [t0, t1], of which t1 sets only the direction. The integration runs from t0 with no end
    time until a value of event_fn(t, y) (a tensor of any shape) changes sign from its sign at t0;
    event_t is that time, located on the step's dense output to round-off, and solution stacks y0
    and the state at event_t, shape (2, *y0.shape). Both are differentiable with gradient "aca" or
    "direct" (implicit function theorem). Raises SolverError after options['max_steps'] steps
    without an event.
    """
    y0 = check_state(y0)
    layout = StateLayout(y0)
    flat = layout.flatten(y0)
    times = check_times(t, flat)
    if len(times) != 2:
        raise ValueError(f"with event_fn, t must be [t0, t1] (t1 gives only the direction), got {len(times)} times")
    guards = Guards.from_event_fn(event_fn, layout, times[0], flat)
    direction = 1.0 if times[1] > times[0] else -1.0
    solver = Solver(func, method, rtol, atol, gradient, options, params)
    signs = signs_of(guards.values(times[0], flat))
    _, replayed, problem = run_segment(solver, y0, times[0], direction, guards, signs, None, [], None, None)
    solution = torch.stack([problem.y0, replayed.event_states[-1]])
    return replayed.event_times[-1], layout.unflatten(solution, 2)


def odeint_event(
    func: Callable, y0: StateTensors, t0: Tensor | float, *, event_fn: Callable, reverse_time: bool = False,
    method: str = "dopri5", rtol: float | Tensor = 1e-6, atol: float | Tensor = 1e-8,
    gradient: str | GradientMethod = "aca", options: dict | None = None, params: Sequence[Tensor] | None = None,
) -> tuple[Tensor, StateTensors]:
    """torchdiffeq's odeint_event: integrate from t0 (backward in time with `reverse_time`) until
    event_fn(t, y) changes sign; returns (event_t, solution) with solution = [y0, y(event_t)],
    shape (2, *y0.shape), as `odeint_until_event`. Gradients reach y0, t0, the parameters of func
    and of event_fn through the event time (Chen, Amos & Nickel, ICLR 2021)."""
    if not isinstance(reverse_time, bool):
        raise TypeError(f"reverse_time must be True or False, got {reverse_time!r}")
    t0 = torch.as_tensor(t0)
    if t0.numel() != 1:
        raise ValueError(f"t0 must be a single time, got shape {tuple(t0.shape)}")
    t0 = t0.reshape(1)
    t = torch.cat([t0, t0.detach() + (-1.0 if reverse_time else 1.0)])
    return odeint_until_event(func, y0, t, event_fn=event_fn, method=method, rtol=rtol, atol=atol,
                              gradient=gradient, options=options, params=params)
