"""Adams multistep methods on any grid of steps: Adams-Bashforth (`explicit_adams`) and the
Adams-Bashforth-Moulton predictor-corrector (`implicit_adams`, also `fixed_adams`), the methods
torchdiffeq has under these names.

The weights come from the actual step times. A step from t_n to t_{n+1} = t_n + h integrates the
polynomial interpolating stored derivatives f_m = f(t_m, y_m) at their times (Hairer, Norsett &
Wanner, Solving ODEs I, III.5, variable step size Adams methods):

    y_{n+1} = y_n + h sum_j w_j f_{m_j},   w_j = int_0^1 l_j(s) ds,

with l_j the Lagrange basis polynomials of the nodes s_j = (t_{m_j} - t_n) / h. On a uniform grid
the w_j are the classical Adams-Bashforth and Adams-Moulton coefficients (III.1); torchdiffeq uses
those constants whatever the steps. Everywhere else this follows torchdiffeq 0.2.5 except:

- `max_order` is the order of the formula: the explicit method uses max_order derivatives
  (torchdiffeq: max_order - 1), the implicit one, as in torchdiffeq, an Adams-Bashforth predictor
  of order max_order - 1 and an Adams-Moulton corrector of order max_order.
- The start-up is exact to the order: classical RK4 steps while the history allows only an
  Adams formula of order below min(max_order - 1, 4), then the order climbs by one per step.
  torchdiffeq takes two RK4 steps (3/8 rule) and then starts at order 3, which caps the global
  order of its explicit method at 4; here it is min(max_order, 5), the RK4 steps' local error
  being O(h^5). The default max_order is 4 (torchdiffeq: 12, whose explicit formula of order 11
  is stable only for tiny steps).
- The corrector is evaluated and applied exactly `corrector_iters` times, P(EC)^m E, with no
  convergence test (torchdiffeq: up to max_iters times until the change is within rtol/atol,
  dropping the oldest derivative when it is not). A data-dependent count would make the discrete
  solution jump where the count changes, and replays (gradient="aca", forward sensitivities)
  could take another count than the forward pass: their derivatives would not be its derivatives.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .clock import Span
from .rk import RungeKutta
from .tableaus import RK4

MAX_ORDER = 12  # torchdiffeq's
_ORDER = {"max_order": f"the order of the Adams formula, 1 to {MAX_ORDER} (default 4)"}
_CORRECTOR = {"corrector_iters": "evaluate-correct passes of the Adams-Moulton corrector per step (default 1: PECE)"}
# name -> its options; fixed_adams is torchdiffeq's older name for implicit_adams
ADAMS_METHODS = {"explicit_adams": _ORDER, "implicit_adams": {**_ORDER, **_CORRECTOR},
                 "fixed_adams": {**_ORDER, **_CORRECTOR}}


class History(NamedTuple):
    """The stored derivatives f(t_m, y_m), newest first, stacked on a new first dimension, and their times t_m."""

    derivatives: Tensor
    times: Tensor


class Adams:
    """An Adams method with fixed steps; the history of derivatives is the carry, and it is state.

    A step from (y_n, history) evaluates f once at its end, f_{n+1} = f(t_{n+1}, y_{n+1}), and
    carries the history shifted by it: (f_{n+1}, f_n, ...) and their times. The first step's
    carry is f_0 alone. With k derivatives stored the formula's order is q = min(k, max_order)
    (explicit) or min(k + 1, max_order) (implicit); while q < min(max_order - 1, 4) the step is
    classical RK4 (one more evaluation per stage). Explicit: y_{n+1} = y_n + h sum_{j<q} w_j f_{n-j}
    on the nodes of f_n, ..., f_{n-q+1}. Implicit: the predictor is that formula of order
    max(q - 1, 1); the corrector y_{n+1} = y_n + h (w_* f(t_{n+1}, y_{n+1}) + sum_{j<q-1} w_j f_{n-j})
    on the nodes of t_{n+1}, t_n, ..., t_{n-q+2} is applied `corrector_iters` times. Dense output
    is the cubic Hermite interpolant through (y_n, f_n) and (y_{n+1}, f_{n+1}).
    """

    adaptive = False
    has_dense_output = True

    def __init__(self, name: str, dtype: torch.dtype, device: torch.device, max_order: int = 4,
                 corrector_iters: int = 1):
        if not (_is_integer(max_order) and 1 <= max_order <= MAX_ORDER):
            raise ValueError(f"options['max_order'] must be an integer from 1 to {MAX_ORDER}, got {max_order!r}")
        if not (_is_integer(corrector_iters) and corrector_iters >= 1):
            raise ValueError(f"options['corrector_iters'] must be a positive integer, got {corrector_iters!r}")
        self.name, self.implicit = name, name != "explicit_adams"
        self.max_order, self.corrector_iters = int(max_order), int(corrector_iters)
        self.error_order = self.max_order + 1
        self.start_order = min(self.max_order - 1, 4)
        self._length = max(self.max_order - self.implicit, 1)  # derivatives kept
        self._runge_kutta = RungeKutta(RK4, dtype, device)
        points, weights = np.polynomial.legendre.leggauss(math.ceil(self.max_order / 2))
        self._points = torch.tensor((points + 1) / 2, dtype=dtype, device=device)
        self._quadrature = torch.tensor(weights / 2, dtype=dtype, device=device)
        self._identity = torch.eye(self.max_order, dtype=dtype, device=device)
        self._one = torch.ones(1, dtype=dtype, device=device)

    def __repr__(self) -> str:
        iters = f", corrector_iters={self.corrector_iters}" if self.implicit else ""
        return f"Adams({self.name!r}, max_order={self.max_order}{iters})"

    def weights(self, nodes: Tensor) -> Tensor:
        """w_j = int_0^1 l_j(s) ds for the Lagrange basis polynomials l_j of at most max_order
        distinct nodes outside (0, 1), by Gauss-Legendre quadrature (exact for their degree); each
        l_j(s) = prod_{m != j} (s - s_m) / (s_j - s_m) keeps one sign on (0, 1), so nothing cancels."""
        n = nodes.shape[0]
        gaps = self._points.unsqueeze(1) - nodes
        spread = nodes.unsqueeze(1) - nodes + self._identity[:n, :n]
        return self._quadrature @ (gaps.prod(1, keepdim=True) / gaps) / spread.prod(1)

    def step(
        self, func: Callable, span: Span, y: Tensor, carry: Tensor | History, full: bool = True,
    ) -> tuple[Tensor, list[Tensor]]:
        """One step from y at span.t0 with the history `carry` (f(t0, y) alone at the first step);
        returns y1 and [f(t0, y), y1, the new history's derivatives, their times]. (`full` has no effect.)"""
        history = carry if isinstance(carry, History) else History(carry.unsqueeze(0), span.t0.reshape(1))
        past, f0 = history.derivatives, history.derivatives[0]
        order = min(len(past) + self.implicit, self.max_order)
        if order < self.start_order:
            y1, _ = self._runge_kutta.step(func, span, y, f0)
        else:
            nodes = (history.times - span.t0) / span.h
            n = max(order - self.implicit, 1)  # derivatives of the explicit formula (the predictor)
            y1 = y + torch.tensordot(span.h * self.weights(nodes[:n]), past[:n], dims=1)
            if self.implicit:
                weights = span.h * self.weights(torch.cat([self._one, nodes[:order - 1]]))
                known = y + torch.tensordot(weights[1:], past[:order - 1], dims=1)
                for _ in range(self.corrector_iters):
                    y1 = known + weights[0] * func(span.t1, y1)
        f1 = func(span.t1, y1)
        keep = self._length - 1
        derivatives = torch.cat([f1.unsqueeze(0), past[:keep]])
        return y1, [f0, y1, derivatives, torch.cat([span.t1.reshape(1), history.times[:keep]])]

    def carry(self, ks: list[Tensor]) -> History:
        """The new history."""
        return History(ks[2], ks[3])

    def state_carry(self, carry: Tensor | History) -> Tensor | History:
        """The history is part of the state: its older derivatives cannot be recomputed from y."""
        return carry

    def error(self, h: Tensor, ks: list[Tensor], norm: Callable[[Tensor], Tensor]) -> Tensor:
        """No estimate: the steps are fixed (check_pairing refuses adaptive controllers)."""
        raise NotImplementedError(f"method {self.name!r} has no error estimate")

    def interpolant_stages(self, func: Callable, span: Span, y0: Tensor, y1: Tensor, ks: list[Tensor]) -> list[Tensor]:
        """None: the step has f at both of its ends."""
        return []

    def interpolate(self, theta: Tensor, y0: Tensor, h: Tensor, stages: list[Tensor]) -> Tensor:
        """States at t0 + theta h, shape (len(theta), *y0.shape), by the cubic Hermite interpolant
        y0 + theta h f0 + theta^2 (3 d - h (2 f0 + f1)) + theta^3 (h (f0 + f1) - 2 d), d = y1 - y0."""
        f0, y1, derivatives = stages[:3]
        hf0, hf1, d = h * f0, h * derivatives[0], y1 - y0
        theta = theta.reshape(-1, *[1] * y0.dim())
        return y0 + theta * (hf0 + theta * ((3 * d - 2 * hf0 - hf1) + theta * (hf0 + hf1 - 2 * d)))


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
