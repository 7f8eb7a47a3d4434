"""One generic explicit Runge-Kutta step: stages, embedded error estimate, FSAL and dense output."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .clock import Span
from .tableaus import ButcherTableau

# Cubic Hermite basis in powers theta^1..theta^3, for the vectors (y1 - y0, h f0, h f1):
# y(theta) = y0 + (3 theta^2 - 2 theta^3)(y1 - y0) + (theta - 2 theta^2 + theta^3) h f0
#               + (theta^3 - theta^2) h f1.
_HERMITE = ((0.0, 3.0, -2.0), (1.0, -2.0, 1.0), (0.0, -1.0, 1.0))


def combine(coefficients: Sequence[float], vectors: Sequence[Tensor]) -> Tensor:
    """sum_i c_i v_i over the nonzero coefficients (at least one must be nonzero)."""
    total = None
    for c, v in zip(coefficients, vectors):
        if c != 0.0:
            total = v * c if total is None else total.add(v, alpha=c)
    return total


class RungeKutta:
    """An explicit Runge-Kutta method run from its tableau, with tensors of one dtype and device.

    With an FSAL tableau the last stage f(t1, y1) is the carry: the next step's first stage.
    """

    has_dense_output = True

    def __init__(self, tableau: ButcherTableau, dtype: torch.dtype, device: torch.device):
        self.tableau = tableau
        self.name, self.adaptive = tableau.name, tableau.adaptive
        basis = tableau.dense if tableau.dense is not None else _HERMITE
        self._basis = torch.tensor(basis, dtype=dtype, device=device)
        self._powers = torch.arange(1, self._basis.shape[1] + 1, dtype=dtype, device=device)

    @property
    def error_order(self) -> int:
        """q in err ~ h^q: one more than the order of the lower-order member of the pair."""
        return min(self.tableau.order, self.tableau.error_order or self.tableau.order) + 1

    @property
    def needs_end_derivative(self) -> bool:
        """The cubic Hermite interpolant (methods without a continuous extension) uses f(t1, y1)."""
        return self.tableau.dense is None

    def step(
        self, func: Callable, span: Span, y: Tensor, carry: Tensor | None = None, full: bool = True,
    ) -> tuple[Tensor, list[Tensor]]:
        """Take one step from y at span.t0 to span.t1; returns y1 and the stages k.

        With full=False only the stages y1 depends on are evaluated (no error estimate, and the
        FSAL stage is skipped); the first stage k1 = f(t0, y) is taken from `carry` when it is
        already known. Stages with c = 1 are evaluated at exactly t1.
        """
        tab, h = self.tableau, span.h
        ks = [func(span.t0, y) if carry is None else carry]
        n = tab.stages if full else tab.solution_stages
        y1 = None
        for i in range(1, n):
            if i == tab.solution_stages:
                y1 = torch.addcmul(y, h, combine(tab.b, ks))
            stage_y = y1 if (i == tab.stages - 1 and tab.fsal) else torch.addcmul(y, h, combine(tab.a[i], ks))
            ks.append(func(span.t1 if tab.c[i] == 1.0 else span.t0 + tab.c[i] * h, stage_y))
        if y1 is None:
            y1 = torch.addcmul(y, h, combine(tab.b, ks))
        return y1, ks

    def carry(self, ks: list[Tensor]) -> Tensor | None:
        """The FSAL stage f(t1, y1), when the step computed it."""
        return ks[-1] if self.tableau.fsal and len(ks) == self.tableau.stages else None

    def state_carry(self, carry: Tensor | None) -> None:
        """An FSAL stage is a cache, not state."""
        return None

    def error(self, h: Tensor, ks: list[Tensor], norm: Callable[[Tensor], Tensor]) -> Tensor:
        """The norm of the local error estimate h sum_i (b_i - b_hat_i) k_i of the embedded pair."""
        return norm(combine(self.tableau.b_error, ks) * h)

    def end_derivative(self, func: Callable, span: Span, y1: Tensor, ks: list[Tensor]) -> Tensor:
        """f(t1, y1): the FSAL stage when the step computed it, else one more evaluation."""
        carry = self.carry(ks)
        return func(span.t1, y1) if carry is None else carry

    def interpolate(
        self, theta: Tensor, y0: Tensor, y1: Tensor, h: Tensor, ks: list[Tensor], f1: Tensor | None
    ) -> Tensor:
        """States at t + theta h for a 1-D tensor theta in (0, 1], shape (len(theta), *y0.shape).

        The method's continuous extension when it has one, else the cubic Hermite interpolant
        through (y0, f0) and (y1, f1); f1 is used only by the latter.
        """
        if self.tableau.dense is not None:
            vectors = torch.stack(ks) * h
        else:
            vectors = torch.stack([y1 - y0, ks[0] * h, f1 * h])
        weights = (theta.unsqueeze(-1) ** self._powers) @ self._basis.T
        increments = (weights @ vectors.reshape(vectors.shape[0], -1)).reshape(-1, *y0.shape)
        return y0 + increments
