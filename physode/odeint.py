"""The front door: odeint(func, y0, t, ...) and solve(...) -> Solution."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from .checks import FORWARD_ONLY
from .events import odeint_until_event
from .grad import GradientMethod
from .problem import setup
from .scipy_solver import solve_with_scipy
from .solve import StateTensors, Stats


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
    options: dict | None = None, params: Sequence[Tensor] | None = None, event_fn: Callable | None = None,
) -> StateTensors | tuple[Tensor, StateTensors]:
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
    controller. With `event_fn` (torchdiffeq's), t = [t0, t1] and the integration runs from t0
    towards t1 with no end time until event_fn(t, y) changes sign; returns (event_t, states at
    [t0, event_t]), differentiable with "aca" and "direct" (physode.events). Raises `SolverError`
    when the integration cannot go on.
    """
    if event_fn is not None:
        return odeint_until_event(func, y0, t, event_fn=event_fn, method=method, rtol=rtol, atol=atol,
                                  gradient=gradient, options=options, params=params)
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
