"""Levenberg-Marquardt on problems with known minima, its block-arrow normal equations, and its
stopping tests."""

import math

import numpy as np
import pytest
import torch

from physode.training import LevenbergMarquardt, NormalEquations

F64 = torch.float64


class Dense:
    """A least-squares problem r(x) with only global unknowns; counts its evaluations."""

    def __init__(self, residual, x0):
        self.residual, self.x, self.evaluations = residual, x0.clone(), 0

    def position(self):
        return self.x.clone()

    def set_position(self, x):
        self.x = x.clone()

    def evaluate(self, jacobian):
        self.evaluations += 1
        r = self.residual(self.x)
        cost = 0.5 * float(r @ r)
        if not jacobian or not math.isfinite(cost):
            return cost, None
        J = torch.autograd.functional.jacobian(self.residual, self.x)
        return cost, NormalEquations.of(r[None], J[None], J.new_zeros(1, len(r), 0))


def minimise(problem, steps=200, **tolerances):
    method = LevenbergMarquardt(**tolerances)
    for _ in range(steps):
        method.step(problem)
        if method.converged:
            return method
    raise AssertionError("did not converge")


def test_linear_least_squares_matches_lstsq():
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((40, 5)), rng.standard_normal(40)
    At, bt = torch.tensor(A), torch.tensor(b)
    problem = Dense(lambda x: At @ x - bt, torch.zeros(5, dtype=F64))
    minimise(problem, xtol=1e-12)
    assert np.allclose(problem.x.numpy(), np.linalg.lstsq(A, b, rcond=None)[0], rtol=0, atol=1e-9)


def test_rosenbrock_as_residuals_reaches_its_minimum():
    """r = (10 (x2 - x1^2), 1 - x1), from the classical start (-1.2, 1)."""
    problem = Dense(lambda x: torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]]), torch.tensor([-1.2, 1.0], dtype=F64))
    method = minimise(problem)
    assert method.converged in ("ftol", "xtol", "gtol")
    assert np.allclose(problem.x.numpy(), [1.0, 1.0], atol=1e-7)


def test_block_arrow_solution_equals_the_dense_one():
    """Global slope shared by every series, a local offset and scale per series: the Schur-complement
    solve of the damped normal equations equals the dense solve."""
    torch.manual_seed(0)
    S, N, G, L = 4, 9, 3, 2
    r, Jg, Jl = torch.randn(S, N, dtype=F64), torch.randn(S, N, G, dtype=F64), torch.randn(S, N, L, dtype=F64)
    normal = NormalEquations.of(r, Jg, Jl)
    dense = torch.zeros(S * N, G + S * L, dtype=F64)
    for s in range(S):
        dense[s * N:(s + 1) * N, :G] = Jg[s]
        dense[s * N:(s + 1) * N, G + s * L:G + (s + 1) * L] = Jl[s]
    damping = torch.rand(G + S * L, dtype=F64)
    expected = torch.linalg.solve(dense.T @ dense + torch.diag(damping), -dense.T @ r.reshape(-1))
    assert torch.allclose(normal.solve(damping), expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(normal.gradient, dense.T @ r.reshape(-1))
    assert torch.allclose(normal.diagonal, (dense**2).sum(0))
    covariance = torch.linalg.inv(dense.T @ dense)[:G, :G]
    assert torch.allclose(normal.global_inverse(), covariance, rtol=1e-8)


def test_a_trial_point_with_non_finite_residuals_is_rejected_never_accepted():
    """r = (sqrt(1.2 - x) - 0.2 ...): NaN for x > 1.2, minimum at x = 1.16 near that edge; a full
    Gauss-Newton step from the start overshoots into the NaN region."""
    accepted = []

    def residual(x):
        return torch.stack([torch.sqrt(1.2 - x[0]) - 0.2, 0.01 * (x[0] - 1.16)])

    problem = Dense(residual, torch.tensor([0.0], dtype=F64))
    method = LevenbergMarquardt(initial_damping=1e-9)
    for _ in range(100):
        iteration = method.step(problem)
        accepted.append((float(problem.x[0]), iteration.trials))
        if method.converged:
            break
    assert all(x <= 1.2 and math.isfinite(x) for x, _ in accepted)
    assert any(trials > 1 for _, trials in accepted)
    assert problem.x[0].item() == pytest.approx(1.16, abs=1e-6)


def test_stopping_tests_have_scipys_meanings():
    # gtol: a zero residual at the start is a stationary point
    problem = Dense(lambda x: x - 2.0, torch.full((2,), 2.0, dtype=F64))
    assert LevenbergMarquardt().step(problem).converged == "gtol"
    # ftol: a noisy linear fit stops when the cost no longer falls by a relative ftol
    rng = np.random.default_rng(1)
    t = torch.tensor(np.linspace(0, 1, 30))
    y = 2 * t + 1 + torch.tensor(rng.standard_normal(30)) * 0.1
    problem = Dense(lambda x: x[0] * t + x[1] - y, torch.zeros(2, dtype=F64))
    assert minimise(problem, ftol=1e-6, xtol=0.0, gtol=0.0).converged == "ftol"
    # xtol: with the other tests off, the step becomes small relative to x
    problem = Dense(lambda x: x[0] * t + x[1] - y, torch.zeros(2, dtype=F64))
    assert minimise(problem, ftol=0.0, xtol=1e-6, gtol=0.0).converged == "xtol"
