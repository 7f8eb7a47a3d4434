"""The asynchronous leapfrog step and its exact algebraic inverse (Zhuang, Dvornek, Tatikonda &
Duncan, "MALI: A memory efficient and reverse accurate integrator for Neural ODEs", ICLR 2021)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .clock import Span


class AsynchronousLeapfrog:
    """ALF on the augmented state (z, v), v0 = f(t0, z0); one function evaluation per step.

    One step of size h (MALI, Algorithm 1, with damping eta):
        z_half = z + h/2 v,  u = f(t + h/2, z_half),  v1 = v + 2 eta (u - v),  z1 = z_half + h/2 v1.
    Second order in z. The local error estimate is h (u - v), the gap between the midpoint and the
    Euler increments (so q = 2). eta = 1 is undamped; a smaller eta damps the v-recurrence
    v1 = (1 - 2 eta) v + 2 eta u (a steadier forward pass on stiff-ish or noisy fields), but the
    inverse divides by 2 eta - 1, so a reconstruction error grows by about |1 / (2 eta - 1)| per
    step: lower eta only when the forward pass needs it, and never to 0.5 (not invertible).

    The velocity v is carried from step to step like an FSAL stage, but it is part of the state:
    it cannot be recomputed from z.
    """

    name = "alf"
    error_order = 2
    adaptive = True
    has_dense_output = False
    inverse_hint = "raise options['eta'] toward 1"

    def __init__(self, eta: float = 1.0):
        if not (isinstance(eta, (int, float)) and 0 < eta <= 1 and eta != 0.5):
            raise ValueError(f"options['eta'] must be in (0, 1] and not 0.5 (not invertible), got {eta!r}")
        self.eta = float(eta)

    def __repr__(self) -> str:
        return f"AsynchronousLeapfrog(eta={self.eta})"

    @property
    def inverse_growth(self) -> float:
        """|1 / (2 eta - 1)|: how much the inverse step amplifies an error in v."""
        return abs(1.0 / (2.0 * self.eta - 1.0))

    inverse_hint = "raise options['eta'] toward 1"

    def step(
        self, func: Callable, span: Span, z: Tensor, carry: Tensor, full: bool = True
    ) -> tuple[Tensor, list[Tensor]]:
        """One step from (z, v = carry) at span.t0; returns z1 and [v, u, v1]. (`full` has no effect.)"""
        v = carry
        half = span.h * 0.5
        z_half = torch.addcmul(z, half, v)
        u = func(span.t0 + half, z_half)
        v1 = v + (u - v) * (2.0 * self.eta)
        return torch.addcmul(z_half, half, v1), [v, u, v1]

    def carry(self, ks: list[Tensor]) -> Tensor:
        """The velocity v1."""
        return ks[-1]

    def state_carry(self, carry: Tensor | None) -> Tensor | None:
        """The velocity is part of the state."""
        return carry

    def inverse(self, func: Callable, span: Span, z1: Tensor, v1: Tensor) -> tuple[Tensor, Tensor]:
        """The state (z, v) at span.t0 that `step` maps to (z1, v1), exactly up to round-off."""
        half = span.h * 0.5
        z_half = torch.addcmul(z1, -half, v1)
        u = func(span.t0 + half, z_half)
        v = (u * (2.0 * self.eta) - v1) / (2.0 * self.eta - 1.0)
        return torch.addcmul(z_half, -half, v), v

    def error(self, h: Tensor, ks: list[Tensor], norm: Callable[[Tensor], Tensor]) -> Tensor:
        """The norm of the local error estimate h (u - v)."""
        return norm((ks[1] - ks[0]) * h)
