"""Each tableau's empirical order of accuracy, its embedded error estimate and its dense output."""

import math

import pytest
import torch
from scipy.integrate._ivp.rk import RK45

from physode.solve import TABLEAUS, RungeKutta, Span, rms
from problems import F64, cos_growth, cos_growth_exact


def _span(t0, h):
    t0, h = torch.tensor(t0, dtype=F64), torch.tensor(h, dtype=F64)
    return Span(t0, t0 + h, h)


def _solve(rk, n, T=1.0):
    y, h = torch.tensor([1.0], dtype=F64), T / n
    for i in range(n):
        y, _ = rk.step(cos_growth, _span(i * h, h), y)
    return y


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_convergence_order(name):
    """Global error ratio when halving the step is about 2^order."""
    tab = TABLEAUS[name]
    rk = RungeKutta(tab, F64, torch.device("cpu"))
    exact = cos_growth_exact(torch.tensor(1.0, dtype=F64), 1.0)
    n = 16 if tab.order >= 5 else 32
    errors = [(_solve(rk, m) - exact).abs().item() for m in (n, 2 * n)]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(tab.order, abs=0.25)


@pytest.mark.parametrize("name", [n for n, t in TABLEAUS.items() if t.adaptive])
def test_embedded_error_estimate_order(name):
    """The local error estimate of one step scales as h^(error_order + 1)."""
    tab = TABLEAUS[name]
    rk = RungeKutta(tab, F64, torch.device("cpu"))
    y = torch.tensor([1.0], dtype=F64)
    estimates = []
    for h in (0.04, 0.02):
        span = _span(0.3, h)
        _, ks = rk.step(cos_growth, span, y)
        estimates.append(rk.error(span.h, ks, rms).item())
    assert math.log2(estimates[0] / estimates[1]) == pytest.approx(tab.error_order + 1, abs=0.25)


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_dense_output_local_order(name):
    """Error of one step's interpolant inside the step ~ h^(p + 1), p = min(dense order, method order)."""
    tab = TABLEAUS[name]
    rk = RungeKutta(tab, F64, torch.device("cpu"))
    y0, t0, theta = torch.tensor([1.0], dtype=F64), 0.3, torch.tensor([0.37, 0.81], dtype=F64)
    errors = []
    for h in (0.08, 0.04):
        span = _span(t0, h)
        y1, ks = rk.step(cos_growth, span, y0)
        f1 = rk.end_derivative(cos_growth, span, y1, ks)
        inside = rk.interpolate(theta, y0, y1, span.h, ks, f1)
        exact = cos_growth_exact(t0 + theta[:, None] * h, y0, t0=t0)
        errors.append((inside - exact).abs().max().item())
    p = min(tab.dense_order, tab.order)
    assert math.log2(errors[0] / errors[1]) == pytest.approx(p + 1, abs=0.35)


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_interpolant_reaches_the_step_end(name):
    rk = RungeKutta(TABLEAUS[name], F64, torch.device("cpu"))
    y0, span = torch.tensor([1.0, 2.0], dtype=F64), _span(0.1, 0.2)
    y1, ks = rk.step(cos_growth, span, y0)
    f1 = rk.end_derivative(cos_growth, span, y1, ks)
    end = rk.interpolate(torch.tensor([1.0], dtype=F64), y0, y1, span.h, ks, f1)[0]
    assert (end - y1).abs().max() < 1e-14


def test_dopri5_dense_output_equals_scipy_rk45():
    """Shampine's continuous extension: the same polynomial coefficients as scipy's RK45."""
    ours = torch.tensor(TABLEAUS["dopri5"].dense, dtype=F64)
    assert torch.allclose(ours, torch.tensor(RK45.P, dtype=F64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_consistency_conditions(name):
    tab = TABLEAUS[name]
    assert sum(tab.b) == pytest.approx(1.0, abs=1e-14)
    for row, c in zip(tab.a, tab.c):
        assert sum(row) == pytest.approx(c, abs=1e-14)
    if tab.b_error is not None:
        assert sum(tab.b_error) == pytest.approx(0.0, abs=1e-14)
