"""Error norm, initial step and the step-size controllers.

A controller is an immutable configuration. What changes during a solve is its state: `init`
makes it with the first step size, and `adapt` returns it anew after every attempted step, with
the verdict and the next step size (the design of diffrax's and torchode's controllers).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from .errors import SolverError, caller_stacklevel


def rms(x: Tensor) -> Tensor:
    """The root-mean-square norm, the default error norm."""
    return x.square().mean().sqrt()


@dataclass(frozen=True)
class Tolerance:
    """Relative and absolute tolerances (numbers, or tensors shaped like the solver's flat state)
    and the norm of a weighted error (a function of a flat tensor returning a 0-d tensor)."""

    rtol: float | Tensor
    atol: float | Tensor
    norm: Callable[[Tensor], Tensor] = rms

    def weigh(self, y0: Tensor, y1: Tensor) -> WeightedNorm:
        """The error norm of a step from y0 to y1 (see WeightedNorm)."""
        return WeightedNorm(self, y0, y1)

    def size(self, x: Tensor, y: Tensor) -> float:
        """norm(x / (atol + rtol |y|)), as a float."""
        return self.norm(x / (self.atol + self.rtol * y.abs())).item()


class WeightedNorm(NamedTuple):
    """The error norm of a step from y0 to y1: e -> norm(e / (atol + rtol max(|y0|, |y1|))); the step
    is acceptable when its error is <= 1 (Hairer, Norsett & Wanner, Solving ODEs I, II.4, (4.11))."""

    tolerance: Tolerance
    y0: Tensor
    y1: Tensor

    def __call__(self, error: Tensor) -> Tensor:
        tol = self.tolerance
        return tol.norm(error / (tol.atol + tol.rtol * torch.maximum(self.y0.abs(), self.y1.abs())))


@torch.no_grad()
def initial_step(
    func: Callable, t0: float, y0: Tensor, f0: Tensor, direction: float, q: int, tolerance: Tolerance, limit: float,
) -> float:
    """Starting step size magnitude, at most `limit` (Hairer, Norsett & Wanner, Solving ODEs I, II.4).

    One trial Euler step of size h0 = 0.01 ||y0|| / ||f0|| estimates the second derivative; the
    step is then chosen so that an error estimate ~ h^q is about 0.01 (q = 5 for dopri5, as in
    the DOPRI5 code). `limit` must not exceed the distance to the end of the span, so that the
    probe stays inside it.
    """
    d0, d1 = tolerance.size(y0, y0), tolerance.size(f0, y0)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, limit)
    if not h0 > 0:
        raise SolverError("step size underflow", t0, 0, hint=_HUGE_DERIVATIVE)
    t1 = torch.as_tensor(t0 + direction * h0, dtype=y0.dtype, device=y0.device)
    t1 = t1.clamp(*sorted((t0, t0 + direction * limit)))
    f1 = func(t1, y0 + (direction * h0) * f0)
    d2 = tolerance.size(f1 - f0, y0) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / q)
    h = min(100 * h0, h1, limit)
    if not h > 0:
        raise SolverError("step size underflow", t0, 0, hint=_HUGE_DERIVATIVE)
    return h


_HUGE_DERIVATIVE = ("the derivative at t0 is too large for any step, or its ratio to atol + rtol |y0| overflows the "
                    "dtype (check the parameters, the initial state and atol)")


def resolvable_rtol(rtol: float | Tensor, dtype: torch.dtype, name: str = "rtol") -> float | Tensor:
    """rtol raised, with a warning naming it as `name`, to half the machine epsilon of dtype, the
    smallest relative change dtype resolves. Below it the error estimate is mostly round-off and
    the steps shrink until max_steps; at it, step counts follow the method's order."""
    floor = torch.finfo(dtype).eps / 2
    low = bool((rtol < floor).any()) if isinstance(rtol, Tensor) else rtol < floor
    if not low:
        return rtol
    given = f"{name} has values" if isinstance(rtol, Tensor) else f"{name}={rtol:.3g} is"
    warnings.warn(f"{given} below what {dtype} resolves; raised to its floor {floor:.3g} (half the machine "
                  f"epsilon of {dtype})", stacklevel=caller_stacklevel())
    return rtol.clamp(min=floor) if isinstance(rtol, Tensor) else floor


def check_resolved(h: float, name: str, t0: float, direction: float, length: float, dtype: torch.dtype) -> None:
    """Raise SolverError when steps of size h (`name`) are below the resolution of the times of the
    span in dtype (4 eps |t|, the bound of a rejected step's underflow): they would not move t."""
    far = max(abs(t0), abs(t0 + direction * length))
    if h < 4 * torch.finfo(dtype).eps * far:
        raise SolverError("step size underflow", t0, 0,
                          hint=f"{name} {h:.3g} is below the resolution of t near {far:.3g} in {dtype}")


class Trial(NamedTuple):
    """An attempted step as a controller judges it: from time t0 to t1, of size h (its magnitude),
    where the controller had proposed h_wanted (h is shorter when the step was cut to land on an
    output time); states y0 and y1; `error(norm)` the stepper's error ratio under an error norm,
    computed on demand; `steps` accepted before it; `t_scale` the magnitude of the numbers t0 is made of."""

    t0: float
    t1: float
    h_wanted: float
    h: float
    y0: Tensor
    y1: Tensor
    error: Callable[[Callable[[Tensor], Tensor]], Tensor]
    steps: int
    t_scale: float


class Controller(Protocol):
    """Chooses the step sizes of the stepping loop.

    `init` returns the first step size and the controller's state; `adapt` returns whether the
    attempted step is accepted, the next step size to try and the new state, or raises
    SolverError when the integration cannot go on. `placement` ties accepted step ends to the
    output times ("fraction" of their segment, or "offset" from its start; see Clock.node), and
    `adaptive` controllers read the stepper's error estimate.
    """

    placement: str
    adaptive: bool

    def init(
        self, func: Callable, t0: float, y0: Tensor, f0: Tensor, direction: float, length: float, q: int,
        tolerance: Tolerance,
    ) -> tuple[float, Any]: ...

    def adapt(self, state: Any, trial: Trial) -> tuple[bool, float, Any]: ...


def check_setting(name: str, value, label: str) -> None:
    """Raise a ValueError, naming the setting as `label`, unless `value` suits controller setting `name`."""
    if name == "min_step":
        if not (_is_real(value) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{label} must be a number >= 0, got {value!r}")
        return
    if name in ("first_step", "max_step", "h", "accepted_min_factor"):
        if value is None and name in ("first_step", "accepted_min_factor"):
            return
        if not (_is_real(value) and value > 0 and (name == "max_step" or math.isfinite(value))):
            raise ValueError(f"{label} must be a positive number, got {value!r}")
        return
    if not (_is_real(value) and math.isfinite(value)):
        raise ValueError(f"{label} must be a finite number, got {value!r}")
    if name == "beta2":
        if value < 0:
            raise ValueError(f"{label} must be >= 0, got {value!r}")
    elif not value > 0:
        raise ValueError(f"{label} must be positive, got {value!r}")
    if name == "safety" and not value <= 1:
        raise ValueError(f"{label} must be in (0, 1], got {value!r}")


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class _PIState(NamedTuple):
    tolerance: Tolerance
    q: int
    eps: float
    length: float
    err_previous: float = 1.0  # no history before the first step
    after_rejection: bool = False


@dataclass(frozen=True)
class PIController:
    """Proportional-integral step-size controller (Gustafsson 1991; Hairer, Norsett & Wanner,
    Solving ODEs I, II.4, and the stabilised step-size control of their DOPRI5 code).

    After an accepted step with error ratio err_n (previous err_{n-1}), for an error ~ h^q:
    h_new = h * safety * err_n^(-beta1/q) * err_{n-1}^(beta2/q), within [accepted_min_factor
    (None: min_factor), max_factor], and never growing right after a rejection. After a rejected
    step: h * max(min_factor, safety * err_n^(-1/q)). The defaults are DOPRI5's (err_n^-0.17 err_{n-1}^0.04 at q = 5), except
    that the first step has no history (err_{n-1} = 1, where DOPRI5 starts from 1e-4 and so damps
    the first growth by 0.69). Steps are at most `max_step` and at least `min_step`, and a step
    of `min_step` or less is accepted whatever its error (torchdiffeq's rule); the first is
    `first_step`, or chosen by `initial_step`. A rejected step shorter than 4 eps times the time's
    magnitude is an underflow.
    """

    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0
    beta1: float = 0.85
    beta2: float = 0.2
    first_step: float | None = None
    max_step: float = math.inf
    min_step: float = 0.0
    accepted_min_factor: float | None = None

    placement = "fraction"
    adaptive = True

    def __post_init__(self):
        for name in ("safety", "min_factor", "max_factor", "beta1", "beta2", "first_step", "max_step", "min_step",
                     "accepted_min_factor"):
            check_setting(name, getattr(self, name), f"{type(self).__name__} {name}")
        if self.min_step > self.max_step:
            raise ValueError(f"{type(self).__name__} needs min_step <= max_step, got {self.min_step!r} and {self.max_step!r}")
        if not self.min_factor < 1 < self.max_factor:
            raise ValueError(f"{type(self).__name__} needs min_factor < 1 < max_factor, "
                             f"got {self.min_factor!r} and {self.max_factor!r}")
        if self.accepted_min_factor is not None and not self.min_factor <= self.accepted_min_factor <= 1:
            raise ValueError(f"{type(self).__name__} needs min_factor <= accepted_min_factor <= 1, "
                             f"got {self.min_factor!r} and {self.accepted_min_factor!r}")

    def init(self, func, t0, y0, f0, direction, length, q, tolerance):
        check_resolved(self.max_step, "max_step", t0, direction, length, y0.dtype)
        if self.first_step is not None:
            h = self.first_step
        else:
            h = initial_step(func, t0, y0, f0, direction, q, tolerance, limit=min(length, self.max_step))
        return self._clamp(h), _PIState(tolerance, q, torch.finfo(y0.dtype).eps, length)

    def _clamp(self, h: float) -> float:
        return min(max(h, self.min_step), self.max_step)

    def adapt(self, state: _PIState, trial: Trial) -> tuple[bool, float, _PIState]:
        with torch.no_grad():
            err = trial.error(state.tolerance.weigh(trial.y0, trial.y1)).item()
        q = state.q
        if not err <= 1.0 and not (math.isfinite(err) and trial.h <= self.min_step):
            finite = math.isfinite(err)
            factor = min(1.0, max(self.min_factor, self.safety * err ** (-1.0 / q))) if finite else self.min_factor
            h = trial.h * factor
            if trial.h <= self.min_step:  # only a non-finite error rejects a step this small
                raise SolverError("non-finite state", trial.t0, trial.steps,
                                  hint=f"the step of {trial.h:.3g} is at min_step and may not shrink")
            if h < 4 * state.eps * max(trial.t_scale, state.eps * state.length):
                raise SolverError("step size underflow" if finite else "non-finite state", trial.t0, trial.steps,
                                  hint=f"step size shrank to {h:.3g}; the problem may be stiff or the vector field "
                                       "singular there")
            return False, self._clamp(h), state._replace(after_rejection=True)
        factor = self.safety * max(err, 1e-10) ** (-self.beta1 / q) * state.err_previous ** (self.beta2 / q)
        least = self.min_factor if self.accepted_min_factor is None else self.accepted_min_factor
        factor = min(1.0 if state.after_rejection else self.max_factor, max(least, factor))
        h = trial.h * factor
        if trial.h < trial.h_wanted:  # a step cut short to land on an output time: do not shrink for that
            h = max(h, trial.h_wanted)
        return True, self._clamp(h), state._replace(err_previous=max(err, 1e-4), after_rejection=False)


@dataclass(frozen=True)
class IController(PIController):
    """The classical integral controller: a PIController without error history (beta2 = 0),
    h_new = h * safety * err_n^(-beta1/q), beta1 = 1 by default (Hairer, Norsett & Wanner, II.4, (4.13)).
    An accepted step is not followed by a shorter one (accepted_min_factor = 1), as in torchdiffeq
    and diffrax: its error was within the tolerance."""

    beta1: float = 1.0
    beta2: float = field(default=0.0, init=False)
    accepted_min_factor: float | None = 1.0


@dataclass(frozen=True)
class ConstantStep:
    """Steps of a constant size h (the last step of each span between anchors is shortened to land
    on it); no error estimate is read. A non-finite state stops the integration."""

    h: float

    placement = "offset"
    adaptive = False

    def __post_init__(self):
        check_setting("h", self.h, "ConstantStep h")

    def init(self, func, t0, y0, f0, direction, length, q, tolerance):
        check_resolved(self.h, "step size", t0, direction, length, y0.dtype)
        return float(self.h), None

    def adapt(self, state: None, trial: Trial) -> tuple[bool, float, None]:
        if not bool(torch.isfinite(trial.y1).all()):
            raise SolverError("non-finite state", trial.t1, trial.steps, hint=f"step size {trial.h:.3g} may be too large")
        return True, float(self.h), state


@dataclass(frozen=True)
class GridSteps(ConstantStep):
    """One step from each anchor to the next: on the output times (torchdiffeq's fixed grid when no
    step size is given), on a grid given as stop times, or both."""

    h: float = field(default=math.inf, init=False)

    def __post_init__(self):
        pass
