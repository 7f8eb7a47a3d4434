"""method="scipy_solver": scipy.integrate.solve_ivp behind odeint's call, forward only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from .checks import check_callbacks, check_params, check_state, check_times, check_tolerance
from .solve import Callbacks, SolverError, StateLayout, Stats, check_setting

NAME = "scipy_solver"
SOLVERS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
OPTIONS = {
    "solver": f"the solve_ivp method, one of {', '.join(SOLVERS)} (default LSODA, as torchdiffeq)",
    "first_step": "initial step (default: solve_ivp's choice)",
    "max_step": "largest step",
    "min_step": "smallest step (LSODA only)",
}


def solve_with_scipy(
    func: Callable, y0, t, rtol, atol, options: dict | None, params: Sequence[Tensor] | None,
) -> tuple[Tensor, Tensor, Stats]:
    """(times, states, stats) of dy/dt = func(t, y) by `scipy.integrate.solve_ivp` in float64 on the
    CPU, returned in y0's dtype and device (torchdiffeq's scipy_solver). func is evaluated without
    a graph; a gradient asked of the result raises an error that says which methods give one."""
    y0 = check_state(y0)
    layout = StateLayout(y0)
    flat = layout.flatten(y0)
    times = check_times(t, flat)
    rtol = check_tolerance("rtol", rtol, layout, flat)
    atol = check_tolerance("atol", atol, layout, flat)
    settings = _settings(options)
    check_callbacks(Callbacks.of(func, layout), None, NAME)
    wrapped = layout.wrap(func)
    stats = Stats(accepted=None, rejected=None)

    def derivative(s: float, y: np.ndarray) -> np.ndarray:
        state = torch.as_tensor(y, dtype=flat.dtype, device=flat.device).reshape(flat.shape)
        stats.nfe += 1
        with torch.no_grad():
            return wrapped(torch.as_tensor(s, dtype=flat.dtype, device=flat.device), state).reshape(-1).double().cpu().numpy()

    grid = times.detach().double().cpu().numpy()
    if len(grid) == 1:
        ys = flat.detach().unsqueeze(0)
    else:
        result = solve_ivp(derivative, (grid[0], grid[-1]), flat.detach().double().cpu().reshape(-1).numpy(),
                           t_eval=grid, rtol=_numpy(rtol, flat), atol=_numpy(atol, flat), **settings)
        if not result.success:
            raise SolverError(f"scipy's {settings['method']} failed: {result.message}", float(result.t[-1]),
                              len(result.t))
        ys = torch.as_tensor(result.y.T.copy(), dtype=flat.dtype, device=flat.device).reshape(len(grid), *flat.shape)
    inputs = [x for x in (*([y0] if isinstance(y0, Tensor) else y0), t, *check_params(func, params))
              if isinstance(x, Tensor) and x.requires_grad]
    if inputs and torch.is_grad_enabled():
        ys = _NoGradient.apply(ys, *inputs)
    return times, layout.unflatten(ys, len(grid)), stats


def _settings(options: dict | None) -> dict:
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        listing = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
        raise ValueError(f"unknown options {unknown} for method='scipy_solver'; its options are {listing}")
    solver = options.pop("solver", "LSODA")
    if solver not in SOLVERS:
        raise ValueError(f"options['solver'] must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if "min_step" in options and solver != "LSODA":
        raise ValueError(f"options['min_step'] is an option of scipy's LSODA only, not of {solver!r}")
    for key, value in options.items():
        check_setting(key, value, f"options[{key!r}]")
    return {"method": solver, **{key: float(value) for key, value in options.items()}}


def _numpy(tolerance: float | Tensor, like: Tensor):
    """A tolerance as solve_ivp takes it: a number, or one per component of the flat state."""
    if isinstance(tolerance, float):
        return tolerance
    return torch.broadcast_to(tolerance, like.shape).detach().double().cpu().reshape(-1).numpy()


class _NoGradient(torch.autograd.Function):
    """The states, with a backward that says the scipy solver gives no gradient."""

    @staticmethod
    def forward(ctx, ys: Tensor, *inputs: Tensor) -> Tensor:
        return ys.view_as(ys)

    @staticmethod
    def backward(ctx, grad: Tensor):
        raise RuntimeError("method='scipy_solver' runs scipy.integrate.solve_ivp, which gives no gradient; use a "
                           "physode method (dopri5, dopri8, tsit5, ...) for gradients, or solve under torch.no_grad()")
