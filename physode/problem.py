"""The checked initial value problem that every front door (odeint, solve, sensitivities, events)
solves: arguments checked at the boundary, a flat state, the stepper, the controller and the
gradient method."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .checks import (
    check_callbacks, check_declared, check_gradient, check_method, check_options, check_pairing, check_params,
    check_precision, check_state, check_times, check_tolerance,
)
from .grad import GradientMethod, Problem
from .solve import (
    Callbacks, CompiledStepper, CountedFunc, SolverError, StateLayout, StateTensors, Stats, Stops, Tolerance, aside, make_stepper,
    resolvable_rtol, rms,
)


def setup(
    func: Callable, y0: StateTensors, t, method: str, rtol, atol, gradient: str | GradientMethod,
    options: dict | None, params: Sequence[Tensor] | None, *, declared: bool = True,
) -> tuple[Problem, StateLayout, GradientMethod]:
    """The checked initial value problem on a flat state, its layout and the gradient method.

    f0 = func(t0, y0) is evaluated here. Where the method differentiates only the declared params,
    it is evaluated with detached arguments, and (with `declared`) a func that depends on another
    tensor requiring grad is refused.
    """
    method = check_method(method)
    settings = check_options(options, method, check_gradient(gradient))
    if not callable(func):
        raise TypeError(f"func must be callable as func(t, y), got {type(func).__name__}")
    y0 = check_state(y0)
    layout = StateLayout(y0)
    flat_y0 = layout.flatten(y0)
    times = check_times(t, flat_y0)
    check_precision(flat_y0.dtype, settings.controller)
    rtol = check_tolerance("rtol", rtol, layout, flat_y0)
    if settings.controller.adaptive:
        rtol = resolvable_rtol(rtol, flat_y0.dtype)
    tolerance = Tolerance(rtol, check_tolerance("atol", atol, layout, flat_y0), _norm(settings.norm, layout))
    stepper = make_stepper(method, flat_y0.dtype, flat_y0.device, **settings.method_options)
    if settings.compile is not None:
        stepper = CompiledStepper(stepper, settings.compile, flat_y0.device, tolerance, layout)
    strategy = settings.gradient
    check_pairing(stepper, settings.controller, strategy)
    params = check_params(func, params)

    # with perturb, func is never evaluated on a grid point: f0 is taken just after t0
    start = aside(times[0], 1.0 if times[-1] >= times[0] else -1.0) if settings.perturb else times[0]
    stats = Stats(nfe=1)
    if strategy.needs_params:
        # The method differentiates only `params`: evaluate with detached arguments so that a func
        # closing over y0, t or any other tensor that requires grad is caught here.
        f0 = layout.derivative(func(start.detach(), layout.unflatten(flat_y0.detach())), start)
        if declared and torch.is_grad_enabled():
            check_declared(f0, params, strategy)
        f0 = f0.detach()
    else:
        f0 = layout.derivative(func(start, y0), start)
    if not bool(torch.isfinite(f0).all()):
        raise SolverError("non-finite derivative func(t0, y0)", times[0].item(), 0)

    callbacks = Callbacks.of(func, layout)
    check_callbacks(callbacks, settings.controller, method)
    problem = Problem(
        func=CountedFunc(layout.wrap(func), stats), y0=flat_y0, f0=f0, times=times, params=params,
        stepper=stepper, controller=settings.controller, tolerance=tolerance,
        land=settings.land or not stepper.has_dense_output, max_steps=settings.max_steps, stats=stats,
        stops=Stops(settings.step_t + _grid(settings.grid_constructor, func, y0, times), settings.jump_t, settings.perturb),
        callbacks=callbacks,
    )
    return problem, layout, strategy


def _norm(norm: Callable | None, layout: StateLayout) -> Callable:
    """The user's error norm on the solver's flat tensor (RMS when None)."""
    if norm is None:
        return rms
    return lambda error: torch.as_tensor(norm(layout.unflatten(error)), dtype=error.dtype, device=error.device)


def _grid(constructor: Callable | None, func: Callable, y0: StateTensors, times: Tensor) -> tuple[float, ...]:
    """The inner times of the grid constructor(func, y0, t) (torchdiffeq's grid_constructor): it must
    run from t[0] to t[-1], strictly monotonic."""
    if constructor is None:
        return ()
    try:
        grid = check_times(constructor(func, y0, times.detach()), times)
    except (TypeError, ValueError) as error:
        raise type(error)(f"options['grid_constructor'] must return a 1-D tensor of times: {error}") from error
    ends = (grid[0].item(), grid[-1].item())
    if ends != (times[0].item(), times[-1].item()):
        raise ValueError(f"options['grid_constructor'] must return times from t[0] = {times[0].item()} to "
                         f"t[-1] = {times[-1].item()}, got {ends[0]} to {ends[-1]}")
    return tuple(grid[1:-1].tolist())
