"""One generic explicit Runge-Kutta step: stages, embedded error estimate, FSAL and dense output."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .clock import Span
from .butcher import ButcherTableau

# DOP853's weight of the third-order estimate in its combined error (Hairer, Norsett & Wanner,
# Solving ODEs I, II.10, and the DOP853 code).
_LOW_ORDER_WEIGHT = 0.01


def combine(coefficients: Sequence[float], vectors: Sequence[Tensor]) -> Tensor:
    """sum_i c_i v_i over the nonzero coefficients (at least one must be nonzero)."""
    total = None
    for c, v in zip(coefficients, vectors):
        if c != 0.0:
            total = v * c if total is None else total.add(v, alpha=c)
    return total


class RungeKutta:
    """An explicit Runge-Kutta method run from its tableau, with tensors of one dtype and device.

    The stage f(t1, y1), where the step or the interpolant evaluates it, is the carry: the next
    step's first stage.
    """

    has_dense_output = True

    def __init__(self, tableau: ButcherTableau, dtype: torch.dtype, device: torch.device):
        self.tableau = tableau
        self.name, self.adaptive = tableau.name, tableau.adaptive
        self._dense = torch.tensor(tableau.dense, dtype=dtype, device=device)
        p, q = zip(*tableau.dense_exponents)
        self._exponents = torch.tensor([p, q], dtype=dtype, device=device)

    @property
    def error_order(self) -> int:
        """q in err ~ h^q: one more than the order of the lower-order member of the pair. With a
        second estimate of order q_low, n^2 / sqrt(n^2 + 0.01 n_low^2) ~ h^(2 q - q_low) (DOP853:
        q = 6, q_low = 4, so 8, the exponent 1/8 of its step-size control)."""
        tab = self.tableau
        q = min(tab.order, tab.error_order or tab.order) + 1
        return q if tab.error_order_low is None else 2 * q - (tab.error_order_low + 1)

    def step(
        self, func: Callable, span: Span, y: Tensor, carry: Tensor | None = None, full: bool = True,
    ) -> tuple[Tensor, list[Tensor]]:
        """Take one step from y at span.t0 to span.t1; returns y1 and the stages k.

        With full=False only the stages y1 depends on are evaluated (no error estimate, and the
        FSAL stage is skipped); the first stage k1 = f(t0, y) is taken from `carry` when it is
        already known. Stages with c = 1 are evaluated at exactly t1.
        """
        tab = self.tableau
        ks = [func(span.t0, y) if carry is None else carry]
        n = tab.stages if full else tab.solution_stages
        y1 = None
        for i in range(1, n):
            if i == tab.solution_stages:
                y1 = torch.addcmul(y, span.h, combine(tab.b, ks))
            ks.append(self._stage(func, span, y, y1, ks, i))
        if y1 is None:
            y1 = torch.addcmul(y, span.h, combine(tab.b, ks))
        return y1, ks

    def _stage(self, func: Callable, span: Span, y: Tensor, y1: Tensor | None, ks: list[Tensor], i: int) -> Tensor:
        """Stage i from the stages before it; the stage f(t1, y1) takes y1 as it is."""
        tab = self.tableau
        stage_y = y1 if i == tab.end_stage else torch.addcmul(y, span.h, combine(tab.a[i], ks))
        return func(span.t1 if tab.c[i] == 1.0 else span.t0 + tab.c[i] * span.h, stage_y)

    def carry(self, ks: list[Tensor]) -> Tensor | None:
        """The stage f(t1, y1), when the stages ks include it."""
        end = self.tableau.end_stage
        return ks[end] if end is not None and end < len(ks) else None

    def state_carry(self, carry: Tensor | None) -> None:
        """The carry f(t1, y1) is a cache, not state."""

    def error(self, h: Tensor, ks: list[Tensor], norm: Callable[[Tensor], Tensor]) -> Tensor:
        """The norm n of the local error estimate h sum_i (b_i - b_hat_i) k_i of the embedded pair;
        with a second, lower-order estimate of norm n_low, DOP853's n^2 / sqrt(n^2 + 0.01 n_low^2)
        (0 when both are 0; Hairer, Norsett & Wanner, Solving ODEs I, II.10)."""
        tab = self.tableau
        n = norm(combine(tab.b_error, ks) * h)
        if tab.b_error_low is None:
            return n
        n_low = norm(combine(tab.b_error_low, ks) * h)
        denominator = (n.square() + _LOW_ORDER_WEIGHT * n_low.square()).sqrt()
        return torch.where(denominator > 0, n.square() / denominator, denominator)

    def interpolant_stages(self, func: Callable, span: Span, y0: Tensor, y1: Tensor, ks: list[Tensor]) -> list[Tensor]:
        """The stages the continuous extension needs beyond those of a full step, ks: f(t1, y1) for
        the cubic Hermite interpolant of a method without FSAL stage, DOP853's three, or none."""
        stages = list(ks)
        for i in range(len(ks), len(self.tableau.c)):
            stages.append(self._stage(func, span, y0, y1, stages, i))
        return stages[len(ks):]

    def interpolate(self, theta: Tensor, y0: Tensor, h: Tensor, stages: list[Tensor]) -> Tensor:
        """States at t0 + theta h for a 1-D tensor theta in (0, 1], shape (len(theta), *y0.shape),
        from the stages of a full step followed by its interpolant_stages."""
        theta = theta.unsqueeze(-1)
        basis = theta ** self._exponents[0] * (1 - theta) ** self._exponents[1]
        vectors = torch.stack(stages) * h
        increments = (basis @ self._dense.T) @ vectors.reshape(vectors.shape[0], -1)
        return y0 + increments.reshape(-1, *y0.shape)
