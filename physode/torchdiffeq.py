"""torchdiffeq's interface on physode's engine: `import physode.torchdiffeq as torchdiffeq` is the switch.

`odeint`, `odeint_adjoint` and `odeint_event` take torchdiffeq's arguments with its defaults
(rtol 1e-7, atol 1e-9, dopri5; its method and option names; `adjoint_params`). `odeint`
differentiates through the solver's steps (physode's `direct`, as torchdiffeq's `odeint` does);
`odeint_adjoint` uses the Adaptive Checkpoint Adjoint, the exact gradient of the same steps,
unless `gradient="adjoint"` asks for the continuous adjoint, which runs torchdiffeq itself with
the adjoint_* settings. What differs from torchdiffeq is in docs/torchdiffeq.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .odeint import odeint as _physode_odeint
from .checks import FORWARD_ONLY, check_params
from .events import odeint_event as _odeint_event
from .grad import ACA, Adjoint, Direct, GradientMethod
from .solve import StateTensors

# torchdiffeq's names for physode's methods, where they differ: its rk4 is Kutta's 3/8 rule
METHODS = {"rk4": "rk38", "adaptive_heun": "heun_euler"}


def odeint(
    func: Callable, y0: StateTensors, t: Tensor, *, rtol: float = 1e-7, atol: float = 1e-9, method: str | None = None,
    options: dict | None = None, event_fn: Callable | None = None,
):
    """torchdiffeq.odeint: the states at the times t, or (event_t, states at [t0, event_t]) with event_fn."""
    return _solve(func, y0, t, rtol, atol, method, options, event_fn, Direct(), None)


def odeint_adjoint(
    func: Callable, y0: StateTensors, t: Tensor, *, rtol: float = 1e-7, atol: float = 1e-9, method: str | None = None,
    options: dict | None = None, event_fn: Callable | None = None, adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None, adjoint_method: str | None = None, adjoint_options: dict | None = None,
    adjoint_params: Sequence[Tensor] | None = None, gradient: str = "aca",
):
    """torchdiffeq.odeint_adjoint: gradients for y0, t and `adjoint_params` (default: func's parameters)
    by ACA, or with gradient="adjoint" by torchdiffeq's continuous adjoint at adjoint_rtol,
    adjoint_atol, by adjoint_method with adjoint_options (which ACA, retracing the forward steps
    exactly, does not need: given with ACA they are ignored, with a warning)."""
    adjoint_settings = {"rtol": adjoint_rtol, "atol": adjoint_atol, "method": adjoint_method, "options": adjoint_options}
    if gradient == "adjoint":
        if adjoint_method is not None:
            adjoint_settings["method"] = _method(adjoint_method)
        strategy: GradientMethod = Adjoint(**adjoint_settings)
    elif gradient == "aca":
        given = sorted(f"adjoint_{key}" for key, value in adjoint_settings.items() if value is not None)
        if given:
            warnings.warn(f"{', '.join(given)} ignored: the Adaptive Checkpoint Adjoint retraces the forward steps "
                          "exactly; pass gradient='adjoint' for torchdiffeq's continuous adjoint", stacklevel=2)
        strategy = ACA()
    else:
        raise ValueError(f"gradient must be 'aca' or 'adjoint', got {gradient!r}")
    return _solve(func, y0, t, rtol, atol, method, options, event_fn, strategy, _adjoint_params(func, adjoint_params))


def odeint_event(
    func: Callable, y0: StateTensors, t0: Tensor, *, event_fn: Callable, reverse_time: bool = False,
    odeint_interface: Callable = odeint, **kwargs,
):
    """torchdiffeq.odeint_event: (event_t, states at [t0, event_t]), the event time and the final
    state differentiable with respect to y0, t0 and func's parameters (implicit function theorem)."""
    gradient = ACA() if odeint_interface is odeint_adjoint else Direct()
    params = _adjoint_params(func, kwargs.pop("adjoint_params", None))
    method = _method(kwargs.pop("method", None))
    options = _options(kwargs.pop("options", None), y0, method)
    return _odeint_event(func, y0, t0, event_fn=event_fn, reverse_time=reverse_time, gradient=gradient,
                         method=method, options=options, params=params,
                         rtol=kwargs.pop("rtol", 1e-7), atol=kwargs.pop("atol", 1e-9), **kwargs)


def _method(method):
    """physode's name for torchdiffeq's method (None: dopri5); a value of another type is left for
    physode's check."""
    if method is None:
        return "dopri5"
    return METHODS.get(method, method) if isinstance(method, str) else method


def _adjoint_params(func: Callable, params: Sequence[Tensor] | None) -> tuple[Tensor, ...] | None:
    """adjoint_params checked under their own name (None: func's parameters)."""
    return None if params is None else check_params(func, params, "adjoint_params")


def _solve(func, y0, t, rtol, atol, method, options, event_fn, gradient, params):
    method = _method(method)
    return _physode_odeint(func, y0, t, rtol=rtol, atol=atol, method=method, options=_options(options, y0, method),
                         gradient=gradient, params=params, event_fn=event_fn)


def _options(options: dict | None, y0: StateTensors, method: str) -> dict | None:
    """torchdiffeq's options as physode's: `interp` is dropped (physode interpolates fixed steps by
    cubic Hermite), the Adams methods' `max_iters` is `corrector_iters` and an explicit Adams
    `max_order` counts as torchdiffeq counts it, and a tuple state's default norm is torchdiffeq's
    mixed norm (the largest RMS norm of its tensors)."""
    if options is not None and not isinstance(options, dict):
        return options
    options = {key: value for key, value in (options or {}).items() if key != "interp"}
    if "max_iters" in options:
        options["corrector_iters"] = options.pop("max_iters")
    if method == "explicit_adams" and isinstance(options.get("max_order"), int):
        options["max_order"] -= 1  # torchdiffeq's explicit Adams of max_order k uses k - 1 derivatives
    if not isinstance(y0, Tensor) and "norm" not in options and method != FORWARD_ONLY:
        options["norm"] = _mixed_norm
    return options or None


def _mixed_norm(pieces: tuple[Tensor, ...]) -> Tensor:
    return torch.stack([piece.square().mean().sqrt() for piece in pieces]).max()
