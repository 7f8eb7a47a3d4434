"""The Butcher tableau of an explicit Runge-Kutta method, and how one is built from exact coefficients.

A stage is k_i = f(t + c_i h, y + h sum_j a_ij k_j); the step is y1 = y + h sum_i b_i k_i over its
len(b) stages. `c` and `a` may go on past them with stages that only the continuous extension
evaluates. `b_error` holds b - b_hat, the difference to the embedded lower-order weights, so the
local error estimate is h sum_i b_error_i k_i; `b_error_low`, where given, is a second estimate
from a still lower order (DOP853's), which RungeKutta.error combines with the first.

`dense` is the continuous extension y(t + theta h) = y + h sum_i b_i(theta) k_i, a row for every
stage: b_i(theta) = sum_j dense[i][j] phi_j(theta), in the basis phi_j = theta^(j+1) ("powers") or
phi_j = theta^(floor(j/2)+1) (1 - theta)^ceil(j/2) ("nested": Hairer's form
y0 + theta (F_0 + (1 - theta)(F_1 + theta (F_2 + (1 - theta)(F_3 + ...)))) with F_j = h sum_i
dense[i][j] k_i, exact at both ends of the step). Methods without their own extension use the
cubic Hermite interpolant through (y0, f0) and (y1, f1), with f(t1, y1) as one more stage where
it is not the FSAL stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction as F


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method: its stages, weights, embedded error estimates, continuous
    extension and orders (error_order and error_order_low: those of the embedded members)."""

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    dense: tuple[tuple[float, ...], ...]
    dense_order: int
    dense_basis: str
    b_error: tuple[float, ...] | None = None
    error_order: int | None = None
    b_error_low: tuple[float, ...] | None = None
    error_order_low: int | None = None
    end_stage: int | None = field(init=False)  # the index of the stage f(t1, y1) (c = 1, a = b), if any
    solution_stages: int = field(init=False)  # the leading stages y1 depends on (the last nonzero b, plus one)

    def __post_init__(self):
        if len(self.a) != len(self.c) or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError(f"tableau {self.name}: a must have a row of length i for every stage i")
        if not len(self.b) <= len(self.c) == len(self.dense):
            raise ValueError(f"tableau {self.name}: b must cover the step's stages and dense every stage")
        if self.dense_basis not in ("powers", "nested"):
            raise ValueError(f"tableau {self.name}: dense_basis must be 'powers' or 'nested', got {self.dense_basis!r}")
        for weights in (self.b_error, self.b_error_low):
            if weights is not None and len(weights) != len(self.b):
                raise ValueError(f"tableau {self.name}: error weights must cover the step's stages")
        object.__setattr__(self, "end_stage", _end_stage(self.c, self.a, self.b))
        object.__setattr__(self, "solution_stages", max(i for i, bi in enumerate(self.b) if bi != 0.0) + 1)

    @property
    def dense_exponents(self) -> tuple[tuple[int, int], ...]:
        """(p, q) of each basis function theta^p (1 - theta)^q that the columns of `dense` weigh."""
        m = len(self.dense[0])
        if self.dense_basis == "powers":
            return tuple((j + 1, 0) for j in range(m))
        return tuple((j // 2 + 1, (j + 1) // 2) for j in range(m))

    @property
    def stages(self) -> int:
        """The step's stages; the continuous extension may evaluate more."""
        return len(self.b)

    @property
    def adaptive(self) -> bool:
        return self.b_error is not None

    @property
    def fsal(self) -> bool:
        """First same as last: the step's last stage is f(t1, y1), the next step's first stage."""
        return self.end_stage == self.stages - 1


def _end_stage(c: Sequence, a: Sequence[Sequence], b: Sequence) -> int | None:
    """The first stage evaluated at (t1, y1): c_i = 1 and a_i = b, up to trailing zeros."""
    for i in range(1, len(c)):
        width = max(i, len(b))
        if c[i] == 1 and _padded(a[i], width) == _padded(b, width):
            return i
    return None


def _padded(values: Sequence, width: int) -> tuple:
    return (*values, *[0] * (width - len(values)))


def tableau(
    name, order, c, a, b, b_hat=None, error_order=None, *, b_error=None, b_hat_low=None, error_order_low=None,
    dense=None, dense_terms=(), dense_order=3,
):
    """A ButcherTableau from exact coefficients (numbers or strings such as "1/3").

    The embedded pair is given by b_hat, or directly by b_error = b - b_hat. `dense` is in powers
    of theta. Without it, the continuous extension is the cubic Hermite interpolant in the nested
    form: F_0 = y1 - y0, F_1 = h f0 - F_0, F_2 = 2 F_0 - h (f0 + f1) (Hairer, Norsett & Wanner,
    Solving ODEs I, II.6), with f1 = f(t1, y1) appended as a stage where no stage is it, followed
    by `dense_terms` F_3, F_4, ... (weight vectors over every stage: DOP853's order-7 extension).
    """
    c, b = [F(x) for x in c], [F(x) for x in b]
    a = [[F(x) for x in row] for row in a]
    dense_basis = "nested" if dense is None else "powers"
    if dense is None:
        end = _end_stage(c, a, b)
        if end is None:
            end = len(c)
            c, a = [*c, F(1)], [*a, list(_padded(b, end))]
        n = len(c)
        f0, f1, increment = _unit(0, n), _unit(end, n), list(_padded(b, n))
        hermite = [increment, [x - y for x, y in zip(f0, increment)],
                   [2 * x - y - z for x, y, z in zip(increment, f0, f1)]]
        dense = list(zip(*hermite, *dense_terms))  # a row per stage
    if b_hat is not None:
        b_error = [x - F(y) for x, y in zip(b, b_hat)]
    b_error_low = None if b_hat_low is None else [x - F(y) for x, y in zip(b, b_hat_low)]
    return ButcherTableau(
        name=name,
        order=order,
        c=_floats(c),
        a=tuple(_floats(row) for row in a),
        b=_floats(b),
        dense=tuple(_floats(row) for row in dense),
        dense_order=dense_order,
        dense_basis=dense_basis,
        b_error=None if b_error is None else _floats(b_error),
        error_order=error_order,
        b_error_low=None if b_error_low is None else _floats(b_error_low),
        error_order_low=error_order_low,
    )


def _floats(values) -> tuple[float, ...]:
    return tuple(float(F(v)) for v in values)


def _unit(i: int, n: int) -> list[F]:
    return [F(int(j == i)) for j in range(n)]
