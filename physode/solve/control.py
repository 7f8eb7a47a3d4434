"""Error norm, initial step and step-size control of the adaptive methods."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def error_ratio(error: Tensor, y0: Tensor, y1: Tensor, rtol: float | Tensor, atol: float | Tensor) -> Tensor:
    """RMS norm of error / (atol + rtol max(|y0|, |y1|)); the step is acceptable when <= 1.

    Hairer, Norsett & Wanner, Solving ODEs I, II.4, eq. (4.11).
    """
    scale = atol + rtol * torch.maximum(y0.abs(), y1.abs())
    return (error / scale).square().mean().sqrt()


@torch.no_grad()
def initial_step(
    func: Callable, t0: float, y0: Tensor, f0: Tensor, direction: float, q: int,
    rtol: float | Tensor, atol: float | Tensor, limit: float,
) -> float:
    """Starting step size magnitude, at most `limit` (Hairer, Norsett & Wanner, Solving ODEs I, II.4).

    One trial Euler step of size h0 = 0.01 ||y0|| / ||f0|| estimates the second derivative; the
    step is then chosen so that an error estimate ~ h^q is about 0.01 (q = 5 for dopri5, as in
    the DOPRI5 code). `limit` must not exceed the distance to the end of the span, so that the
    probe stays inside it.
    """
    scale = atol + rtol * y0.abs()
    d0 = (y0 / scale).square().mean().sqrt().item()
    d1 = (f0 / scale).square().mean().sqrt().item()
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, limit)
    t1 = torch.as_tensor(t0 + direction * h0, dtype=y0.dtype, device=y0.device)
    t1 = t1.clamp(*sorted((t0, t0 + direction * limit)))
    f1 = func(t1, y0 + (direction * h0) * f0)
    d2 = ((f1 - f0) / scale).square().mean().sqrt().item() / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / q)
    return min(100 * h0, h1, limit)


@dataclass(frozen=True)
class PIController:
    """Proportional-integral step-size controller (Gustafsson 1991; Hairer, Norsett & Wanner,
    Solving ODEs I, II.4, and the stabilised step-size control of their DOPRI5 code).

    After an accepted step with error ratio err_n (previous err_{n-1}), for an error ~ h^q:
    h_new = h * safety * err_n^(-beta1/q) * err_{n-1}^(beta2/q), within [min_factor, max_factor],
    and never growing right after a rejection. After a rejected step: h * max(min_factor,
    safety * err_n^(-1/q)). The defaults are DOPRI5's (err_n^-0.17 err_{n-1}^0.04 at q = 5), except
    that the first step has no history (err_{n-1} = 1, where DOPRI5 starts from 1e-4 and so damps
    the first growth by 0.69); beta1 = 1, beta2 = 0 gives the classical integral controller.
    """

    safety: float = 0.9
    min_factor: float = 0.2
    max_factor: float = 10.0
    beta1: float = 0.85
    beta2: float = 0.2

    def __post_init__(self):
        for name in ("safety", "min_factor", "max_factor", "beta1", "beta2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"options[{name!r}] must be a finite number, got {value!r}")
            if name != "beta2" and not value > 0:
                raise ValueError(f"options[{name!r}] must be positive, got {value!r}")
        if not 0 < self.safety <= 1:
            raise ValueError(f"options['safety'] must be in (0, 1], got {self.safety!r}")
        if not self.min_factor < 1 < self.max_factor:
            raise ValueError(
                "options['min_factor'] must be < 1 < options['max_factor'], "
                f"got {self.min_factor!r} and {self.max_factor!r}"
            )
        if self.beta2 < 0:
            raise ValueError(f"options['beta2'] must be >= 0, got {self.beta2!r}")

    def accepted(self, err: float, err_previous: float, q: int, after_rejection: bool) -> float:
        err = max(err, 1e-10)
        factor = self.safety * err ** (-self.beta1 / q) * err_previous ** (self.beta2 / q)
        upper = 1.0 if after_rejection else self.max_factor
        return min(upper, max(self.min_factor, factor))

    def rejected(self, err: float, q: int) -> float:
        if not math.isfinite(err):
            return self.min_factor
        return min(1.0, max(self.min_factor, self.safety * err ** (-1.0 / q)))


@dataclass(frozen=True)
class StepControl:
    """How the loop chooses steps: tolerances and controller for adaptive methods, or a fixed step."""

    rtol: float | Tensor = 1e-6
    atol: float | Tensor = 1e-8
    controller: PIController = PIController()
    first_step: float | None = None
    max_step: float = math.inf
    max_steps: int = 100_000
    step_size: float | None = None
