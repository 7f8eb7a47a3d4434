"""Event location: the root of a guard along one accepted step's dense output, to round-off in t."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..solve import DenseOutput

_MAX_ITERATIONS = 200  # bisection alone reaches round-off from any float bracket in fewer


@dataclass
class DenseStep:
    """An accepted step from (t0, y0) to t1 with the stages its continuous extension needs (those of
    the full step, then its interpolant_stages), taken without a graph."""

    stepper: DenseOutput
    t0: float
    t1: float
    y0: Tensor
    stages: list[Tensor]

    def _theta(self, t: float) -> Tensor:
        return torch.tensor([(t - self.t0) / (self.t1 - self.t0)], dtype=self.y0.dtype, device=self.y0.device)

    def _interpolate(self, theta: Tensor) -> Tensor:
        h = torch.as_tensor(self.t1 - self.t0, dtype=self.y0.dtype, device=self.y0.device)
        return self.stepper.interpolate(theta, self.y0, h, self.stages)[0]

    def state(self, t: float) -> Tensor:
        """The dense output at time t."""
        return self._interpolate(self._theta(t))

    def rate(self, t: float) -> Tensor:
        """d/dt of the dense output at time t: the derivative of u . y(theta) in theta, differentiated
        in u (two reverse passes through the interpolant's polynomial)."""
        with torch.enable_grad():
            theta = self._theta(t).requires_grad_(True)
            y = self._interpolate(theta)
            u = torch.zeros_like(y, requires_grad=True)
            (along,) = torch.autograd.grad(y, theta, u, create_graph=True)
            (d_dtheta,) = torch.autograd.grad(along, u)
        return d_dtheta / (self.t1 - self.t0)


def locate(value: Callable[[float], float], t0: float, t1: float, g0: float, g1: float, eps: float) -> float:
    """The root of a continuous value(t) between t0 and t1, where g0 = value(t0) != 0 and g1 = value(t1)
    is 0 or of the other sign, to round-off in t (relative precision `eps`, that of the state's dtype).

    The Illinois variant of regula falsi (Dowell & Jarratt, BIT 11, 1971), which halves the retained
    end's value when the same end is kept twice, with a bisection whenever an interpolated point
    falls outside the bracket or three steps have not halved it. Returns the end of the final
    bracket on t1's side, so that the guard has crossed at the returned time.
    """
    if g1 == 0.0:
        return t1
    a, b, ga, gb = t0, t1, g0, g1
    tolerance = 4 * eps * max(abs(t0), abs(t1), abs(t1 - t0))
    kept, width = 0, abs(b - a)
    for iteration in range(_MAX_ITERATIONS):
        if abs(b - a) <= tolerance:
            break
        c = b - gb * (b - a) / (gb - ga)
        if iteration % 3 == 2:
            if abs(b - a) > width / 2:
                c = 0.5 * (a + b)
            width = abs(b - a)
        if not min(a, b) < c < max(a, b):
            c = 0.5 * (a + b)
        gc = value(c)
        if gc == 0.0:
            return c
        if (gc > 0) == (gb > 0):
            b, gb = c, gc
            if kept == 1:
                ga *= 0.5
            kept = 1
        else:
            a, ga = c, gc
            if kept == -1:
                gb *= 0.5
            kept = -1
    return b
