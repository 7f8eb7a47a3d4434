"""Levenberg-Marquardt for nonlinear least squares, on normal equations with a block-arrow
structure: global unknowns shared by every series, and local unknowns of each series alone.

minimise F(x) = 1/2 |r(x)|^2. Each iteration solves (J^T J + mu D) dx = -J^T r, with D the
running maximum of diag(J^T J) (Marquardt's scaling, as in MINPACK: More, "The Levenberg-Marquardt
algorithm: implementation and theory", 1978), and updates the damping mu by the gain ratio
rho = (F(x) - F(x + dx)) / (L(0) - L(dx)) of the actual to the predicted reduction (Nielsen's
rule: Madsen, Nielsen & Tingleff, "Methods for non-linear least squares problems", 2004, 3.2).
A trial point whose residuals are not finite, or whose solve fails, is rejected like one that
does not reduce F. Stopping follows scipy.optimize.least_squares: `ftol` on the relative
reduction of F, `xtol` on the step relative to x, `gtol` on the cosine between the residual and
each column of J (the meaning of method="lm").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from .distributed import Group


@dataclass
class NormalEquations:
    """J^T J and J^T r with J's columns split into G global ones and L local ones per series:
    J = [Jg_s | Jl_s] on the rows of series s (s = 1..S), local columns of different series never
    sharing a row. Stored: A = sum_s Jg_s^T Jg_s (G, G), B = Jg_s^T Jl_s (S, G, L),
    C = Jl_s^T Jl_s (S, L, L), the gradients gg (G,) and gl (S, L), and the squared column norms.
    The unknowns are ordered [global, local of series 1, ..., local of series S]."""

    A: Tensor
    B: Tensor
    C: Tensor
    gg: Tensor
    gl: Tensor
    residual_norm: float

    @staticmethod
    def of(residual: Tensor, global_columns: Tensor, local_columns: Tensor) -> NormalEquations:
        """From residuals (S, N), J's global columns (S, N, G) and local columns (S, N, L)."""
        Jg, Jl = global_columns, local_columns
        return NormalEquations(
            A=torch.einsum("sng,snh->gh", Jg, Jg), B=torch.einsum("sng,snl->sgl", Jg, Jl),
            C=torch.einsum("snl,snm->slm", Jl, Jl), gg=torch.einsum("sng,sn->g", Jg, residual),
            gl=torch.einsum("snl,sn->sl", Jl, residual), residual_norm=float(residual.norm()),
        )

    def summed(self, group: Group, rows: Tensor, series: int) -> NormalEquations:
        """The normal equations of all `series` from this rank's, whose blocks are those of the series
        `rows`: the global blocks and the residual norms summed over the ranks, the local blocks
        placed at their series (J^T J and J^T r summed over the ranks). In one process, these."""
        if group.size == 1:
            return self
        B, C, gl = (block.new_zeros(series, *block.shape[1:]) for block in (self.B, self.C, self.gl))
        B[rows], C[rows], gl[rows] = self.B, self.C, self.gl
        squared = self.A.new_tensor([self.residual_norm ** 2])
        parts = [self.A, B, C, self.gg, gl, squared]
        flat = group.sum(torch.cat([part.reshape(-1) for part in parts]))
        A, B, C, gg, gl, squared = (piece.reshape(part.shape) for piece, part in
                                    zip(flat.split([part.numel() for part in parts]), parts))
        return NormalEquations(A, B, C, gg, gl, float(squared.sqrt()))

    @property
    def gradient(self) -> Tensor:
        """J^T r, in the order of the unknowns."""
        return torch.cat([self.gg, self.gl.reshape(-1)])

    @property
    def diagonal(self) -> Tensor:
        """diag(J^T J): the squared norms of J's columns."""
        return torch.cat([self.A.diagonal(), self.C.diagonal(dim1=-2, dim2=-1).reshape(-1)])

    def cosines(self) -> float:
        """max_j |J_j^T r| / (|J_j| |r|): 0 at a stationary point (scipy's gtol for method="lm")."""
        norms = self.diagonal.sqrt() * self.residual_norm
        ratio = self.gradient.abs() / norms
        return float(torch.where(norms > 0, ratio, torch.zeros_like(ratio)).max()) if ratio.numel() else 0.0

    def solve(self, damping: Tensor) -> Tensor:
        """dx solving (J^T J + diag(damping)) dx = -J^T r, eliminating the local unknowns of each
        series first (the Schur complement on the global ones, as in bundle adjustment)."""
        G = self.A.shape[0]
        S, L = self.gl.shape
        dg, dl = damping[:G], damping[G:].reshape(S, L)
        C = self.C + torch.diag_embed(dl)
        if L:
            factor = torch.linalg.cholesky(C)
            solve_c = lambda rhs: torch.cholesky_solve(rhs, factor)  # noqa: E731
            c_inv_bt = solve_c(self.B.transpose(-1, -2))  # (S, L, G)
            c_inv_gl = solve_c(self.gl.unsqueeze(-1)).squeeze(-1)  # (S, L)
            schur = self.A + torch.diag(dg) - torch.einsum("sgl,slh->gh", self.B, c_inv_bt)
            rhs = -self.gg + torch.einsum("sgl,sl->g", self.B, c_inv_gl)
        else:
            schur, rhs = self.A + torch.diag(dg), -self.gg
        step_g = torch.linalg.solve(schur, rhs) if G else rhs
        if not L:
            return step_g
        step_l = -c_inv_gl - torch.einsum("slg,g->sl", c_inv_bt, step_g)
        return torch.cat([step_g, step_l.reshape(-1)])


    def global_inverse(self) -> Tensor:
        """The global block of (J^T J)^-1, the inverse of the Schur complement A - B C^-1 B^T
        (a pseudo-inverse, so that unidentifiable directions give infinite-free, finite output)."""
        if self.gl.shape[1]:
            reduced = self.A - torch.einsum("sgl,slh->gh", self.B, torch.linalg.pinv(self.C) @ self.B.transpose(-1, -2))
        else:
            reduced = self.A
        return torch.linalg.pinv(reduced, hermitian=True)


class LeastSquaresProblem(Protocol):
    """What Levenberg-Marquardt works on: the unknowns x as a flat vector (`position`,
    `set_position`), and `evaluate(jacobian)` at the current x: (F, NormalEquations or None),
    with F = 1/2 |r|^2 (not finite, or an exception, where the residuals cannot be computed)."""

    def position(self) -> Tensor: ...

    def set_position(self, x: Tensor) -> None: ...

    def evaluate(self, jacobian: bool) -> tuple[float, NormalEquations | None]: ...


@dataclass
class Iteration:
    """One accepted Levenberg-Marquardt step (or the reason none was found): the cost before and
    after, the damping, the trials it took, and the stopping tests' distances to their tolerances."""

    cost_before: float
    cost: float
    damping: float
    trials: int
    relative_reduction: float
    relative_step: float
    cosine: float
    converged: str | None = None


class LevenbergMarquardt:
    """Levenberg-Marquardt with Marquardt scaling and Nielsen's damping update (see the module).

    `step(problem)` takes one accepted step (rejected trials included) and returns its Iteration;
    `converged` names the test that stopped it ("ftol", "xtol" or "gtol") once one has.
    `recoverable` lists the exceptions that reject a trial point instead of stopping the fit.
    """

    def __init__(self, ftol: float = 1e-8, xtol: float = 1e-8, gtol: float = 1e-8, initial_damping: float = 1e-3,
                 recoverable: tuple[type[BaseException], ...] = ()):
        self.ftol, self.xtol, self.gtol = ftol, xtol, gtol
        self.damping, self.growth = initial_damping, 2.0
        self.scale: Tensor | None = None
        self.recoverable = recoverable
        self.converged: str | None = None
        self._current: tuple[float, NormalEquations] | None = None

    def state_dict(self) -> dict:
        return {"damping": self.damping, "growth": self.growth, "scale": self.scale, "converged": self.converged}

    def load_state_dict(self, state: dict) -> None:
        self.damping, self.growth, self.scale = state["damping"], state["growth"], state["scale"]
        self.converged, self._current = state["converged"], None

    def step(self, problem: LeastSquaresProblem) -> Iteration:
        if self._current is None:
            self._current = problem.evaluate(jacobian=True)
        cost, normal = self._current
        if not math.isfinite(cost):
            raise FloatingPointError(f"the residuals at the current point are not finite (cost {cost})")
        diagonal = normal.diagonal
        self.scale = diagonal if self.scale is None else torch.maximum(self.scale, diagonal)
        scale = torch.where(self.scale > 0, self.scale, torch.ones_like(self.scale))
        cosine = normal.cosines()
        if cosine <= self.gtol:
            return self._stop("gtol", cost, cost, 0, 0.0, 0.0, cosine)
        x = problem.position()
        trials = 0
        while True:
            trials += 1
            dx = normal.solve(self.damping * scale)
            step_norm, x_norm = float(dx.norm()), float(x.norm())
            if not math.isfinite(step_norm):
                raise FloatingPointError("the Levenberg-Marquardt step is not finite (a Jacobian that is not finite?)")
            relative_step = step_norm / x_norm if x_norm > 0 else math.inf
            if step_norm <= self.xtol * (self.xtol + x_norm):
                return self._stop("xtol", cost, cost, trials, 0.0, relative_step, cosine)
            predicted = 0.5 * float(dx @ (self.damping * scale * dx - normal.gradient))
            problem.set_position(x + dx)
            trial = self._cost(problem)
            rho = (cost - trial) / predicted if predicted > 0 else -math.inf
            if math.isfinite(trial) and rho > 0:
                break
            problem.set_position(x)
            self.damping *= self.growth
            self.growth *= 2.0
        self.damping *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
        self.growth = 2.0
        reduction = (cost - trial) / cost if cost > 0 else 0.0
        self._current = problem.evaluate(jacobian=True)
        iteration = Iteration(cost, self._current[0], self.damping, trials, reduction, relative_step, cosine)
        if reduction <= self.ftol and rho > 0.25:
            self.converged = iteration.converged = "ftol"
        return iteration

    def _cost(self, problem: LeastSquaresProblem) -> float:
        try:
            cost, _ = problem.evaluate(jacobian=False)
        except self.recoverable:
            return math.inf
        return cost if math.isfinite(cost) else math.inf

    def _stop(self, reason: str, before: float, cost: float, trials: int, reduction: float, step: float,
              cosine: float) -> Iteration:
        self.converged = reason
        return Iteration(before, cost, self.damping, trials, reduction, step, cosine, converged=reason)
