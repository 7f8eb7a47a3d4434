"""The front door: odeint(func, y0, t, ...) and solve(...) -> Solution."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import (
    FORWARD_ONLY, check_declared, check_derivative, check_gradient, check_method, check_options, check_pairing, check_params,
    check_state, check_times, check_tolerance,
)
from .grad import GradientMethod, Problem
from .scipy_solver import solve_with_scipy
from .solve import (
    Callbacks, CountedFunc, SolverError, StateLayout, StateTensors, Stats, Stops, Tolerance, make_stepper, rms,
)


@dataclass
class Solution:
    """The result of `solve`: output times `ts`, states `ys` (shape (len(ts), *y0.shape), or a tuple
    of such for a tuple state) and `stats` (filled in for the backward pass once it has run)."""

    ts: Tensor
    ys: StateTensors
    stats: Stats


def odeint(
    func: Callable, y0: StateTensors, t: Tensor | Sequence[float], *, method: str = "dopri5",
    rtol: float | Tensor = 1e-6, atol: float | Tensor = 1e-8, gradient: str | GradientMethod = "aca",
    options: dict | None = None, params: Sequence[Tensor] | None = None,
) -> StateTensors:
    """Solve dy/dt = func(t, y), y(t[0]) = y0, and return y at every time in t.

    Same call as `torchdiffeq.odeint`. y0 is a tensor of any shape or a tuple of tensors; t is
    1-D and strictly increasing or decreasing. Returns a tensor of shape (len(t), *y0.shape), or a
    tuple of them. `method`: euler, midpoint, heun2, heun3, rk4 (classical), rk38 (Kutta's 3/8 rule,
    torchdiffeq's rk4), explicit_adams, implicit_adams (fixed step: on the output times, or
    options={"step_size": h}), heun_euler (= adaptive_heun), fehlberg2, bosh3, dopri5, tsit5,
    dopri8 (adaptive Runge-Kutta), alf (asynchronous leapfrog; lands on every output time) or
    scipy_solver (scipy's solve_ivp, forward only). `gradient`: a method by name, "aca" (Adaptive Checkpoint Adjoint),
    "direct" (backprop through the steps; supports double backward), "mali" (with method="alf":
    memory constant in the number of steps) or "adjoint" (torchdiffeq's), or a value with its own
    options: ACA(checkpoints=K, schedule=...), Direct(), MALI(), Adjoint(rtol=..., atol=...,
    method=...). Gradients reach y0, t and the parameters of func when it is an nn.Module (or a
    bound method of one); a plain function passes its tensors as `params`. `options`: see
    `physode.checks.OPTIONS`; options={"controller": PIController(...)} sets the step-size
    controller. Raises `SolverError` when the integration cannot go on.
    """
    return solve(
        func, y0, t, method=method, rtol=rtol, atol=atol, gradient=gradient, options=options, params=params
    ).ys


def solve(
    func: Callable, y0: StateTensors, t: Tensor | Sequence[float], *, method: str = "dopri5",
    rtol: float | Tensor = 1e-6, atol: float | Tensor = 1e-8, gradient: str | GradientMethod = "aca",
    options: dict | None = None, params: Sequence[Tensor] | None = None,
) -> Solution:
    """As `odeint`, returning a `Solution` with the output times, the states and the work counts."""
    if method == FORWARD_ONLY:
        return Solution(*solve_with_scipy(func, y0, t, rtol, atol, options, params))
    problem, layout, strategy = setup(func, y0, t, method, rtol, atol, gradient, options, params)
    ys = strategy.solve(problem)
    return Solution(ts=problem.times, ys=layout.unflatten(ys, len(problem.times)), stats=problem.stats)


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
    tolerance = Tolerance(check_tolerance("rtol", rtol, layout, flat_y0), check_tolerance("atol", atol, layout, flat_y0),
                          _norm(settings.norm, layout))
    stepper = make_stepper(method, flat_y0.dtype, flat_y0.device, **settings.method_options)
    strategy = settings.gradient
    check_pairing(stepper, settings.controller, strategy)
    params = check_params(func, params)

    stats = Stats(nfe=1)
    if strategy.needs_params:
        # The method differentiates only `params`: evaluate with detached arguments so that a func
        # closing over y0, t or any other tensor that requires grad is caught here.
        detached = layout.unflatten(flat_y0.detach())
        f0 = func(times[0].detach(), detached)
        check_derivative(f0, detached, layout)
        if declared and torch.is_grad_enabled():
            check_declared(f0, params, strategy)
        f0 = f0.detach() if isinstance(f0, Tensor) else tuple(f.detach() for f in f0)
    else:
        f0 = func(times[0], y0)
        check_derivative(f0, y0, layout)
    f0 = layout.flatten(f0)
    if not bool(torch.isfinite(f0).all()):
        raise SolverError("non-finite derivative func(t0, y0)", times[0].item(), 0)

    problem = Problem(
        func=CountedFunc(layout.wrap(func), stats), y0=flat_y0, f0=f0, times=times, params=params,
        stepper=stepper, controller=settings.controller, tolerance=tolerance,
        land=settings.land or not stepper.has_dense_output, max_steps=settings.max_steps, stats=stats,
        stops=Stops(settings.step_t + _grid(settings.grid_constructor, func, y0, times), settings.jump_t, settings.perturb),
        callbacks=Callbacks.of(func, layout),
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
    grid = check_times(constructor(func, y0, times.detach()), times)
    ends = (grid[0].item(), grid[-1].item())
    if ends != (times[0].item(), times[-1].item()):
        raise ValueError(f"options['grid_constructor'] must return times from t[0] = {times[0].item()} to "
                         f"t[-1] = {times[-1].item()}, got {ends[0]} to {ends[-1]}")
    return tuple(grid[1:-1].tolist())
