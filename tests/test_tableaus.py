"""Each tableau's empirical order of accuracy, its embedded error estimate and its dense output;
DOP853 (dopri8) against scipy's implementation, its cost in evaluations and its gradients."""

import math

import numpy as np
import pytest
import torch
import torchdiffeq
from scipy.integrate import DOP853, solve_ivp
from scipy.integrate._ivp.rk import RK45
from torch import nn

import physode
from physode.solve import REGISTRY, TABLEAUS, RungeKutta, Span, Tolerance, rms
from physode.solve.rk import combine
from problems import F64, cos_growth, cos_growth_exact, lotka_volterra

CPU = torch.device("cpu")


def _span(t0, h):
    t0, h = torch.tensor(t0, dtype=F64), torch.tensor(h, dtype=F64)
    return Span(t0, t0 + h, h)


def _solve(rk, n, T=1.0):
    y, h = torch.tensor([1.0], dtype=F64), T / n
    for i in range(n):
        y, _ = rk.step(cos_growth, _span(i * h, h), y)
    return y


def _order(values, halvings=1):
    """log2 of the ratio of successive values when the step is halved."""
    return math.log2(values[0] / values[1]) / halvings


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_convergence_order(name):
    """Global error ratio when halving the step is about 2^order."""
    tab = TABLEAUS[name]
    rk = RungeKutta(tab, F64, CPU)
    n, T = (4, 2.0) if tab.order >= 8 else (16 if tab.order >= 5 else 32, 1.0)  # errors well above round-off
    exact = cos_growth_exact(torch.tensor(T, dtype=F64), 1.0)
    errors = [(_solve(rk, m, T) - exact).abs().item() for m in (n, 2 * n)]
    assert _order(errors) == pytest.approx(tab.order, abs=0.25)


@pytest.mark.parametrize("name", [n for n, t in TABLEAUS.items() if t.adaptive])
def test_embedded_error_estimate_order(name):
    """The error one step reports (through the norm interface) scales as h^q, q = error_order."""
    rk = RungeKutta(TABLEAUS[name], F64, CPU)
    y = torch.tensor([1.0, 2.0], dtype=F64)
    estimates = []
    for h in (0.05, 0.025):
        span = _span(0.0, h)
        _, ks = rk.step(lotka_volterra, span, y)
        estimates.append(rk.error(span.h, ks, rms).item())
    assert _order(estimates) == pytest.approx(rk.error_order, abs=0.25)


def test_dop853_error_estimates_and_their_combination():
    """DOP853's fifth- and third-order estimates scale as h^6 and h^4, their combination
    n5^2 / sqrt(n5^2 + 0.01 n3^2) as h^8, the exponent 1/8 of its step-size control."""
    tab = TABLEAUS["dopri8"]
    rk = RungeKutta(tab, F64, CPU)
    assert (tab.error_order, tab.error_order_low, rk.error_order) == (5, 3, 8)
    y = torch.tensor([1.0, 2.0], dtype=F64)
    e5, e3, combined = [], [], []
    for h in (0.05, 0.025):
        span = _span(0.0, h)
        _, ks = rk.step(lotka_volterra, span, y)
        n5, n3 = rms(combine(tab.b_error, ks) * h).item(), rms(combine(tab.b_error_low, ks) * h).item()
        e5.append(n5)
        e3.append(n3)
        combined.append(rk.error(span.h, ks, rms).item())
        assert combined[-1] == pytest.approx(n5**2 / math.sqrt(n5**2 + 0.01 * n3**2), rel=1e-12, abs=0)
    assert _order(e5) == pytest.approx(6, abs=0.25)
    assert _order(e3) == pytest.approx(4, abs=0.25)
    assert _order(combined) == pytest.approx(8, abs=0.25)
    ks = [torch.zeros(2, dtype=F64)] * tab.stages
    assert rk.error(span.h, ks, rms).item() == 0.0


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_dense_output_local_order(name):
    """Error of one step's interpolant inside the step ~ h^(p + 1), p = min(dense order, method order)."""
    tab = TABLEAUS[name]
    rk = RungeKutta(tab, F64, CPU)
    y0, t0, theta = torch.tensor([1.0], dtype=F64), 0.3, torch.tensor([0.37, 0.81], dtype=F64)
    errors = []
    for h in (0.16, 0.08) if tab.dense_order >= 7 else (0.08, 0.04):
        span = _span(t0, h)
        y1, ks = rk.step(cos_growth, span, y0)
        stages = ks + rk.interpolant_stages(cos_growth, span, y0, y1, ks)
        inside = rk.interpolate(theta, y0, span.h, stages)
        exact = cos_growth_exact(t0 + theta[:, None] * h, y0, t0=t0)
        errors.append((inside - exact).abs().max().item())
    p = min(tab.dense_order, tab.order)
    assert _order(errors) == pytest.approx(p + 1, abs=0.35)


@pytest.mark.parametrize("name", list(TABLEAUS))
def test_interpolant_reaches_the_step_end(name):
    rk = RungeKutta(TABLEAUS[name], F64, CPU)
    y0, span = torch.tensor([1.0, 2.0], dtype=F64), _span(0.1, 0.2)
    y1, ks = rk.step(cos_growth, span, y0)
    stages = ks + rk.interpolant_stages(cos_growth, span, y0, y1, ks)
    end = rk.interpolate(torch.tensor([1.0], dtype=F64), y0, span.h, stages)[0]
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
    for weights in (tab.b_error, tab.b_error_low):
        if weights is not None:
            assert sum(weights) == pytest.approx(0.0, abs=1e-14)


def _brusselator(t, y):
    """A nonlinear oscillator, the Brusselator with A = 1, B = 3 (Hairer, Norsett & Wanner, II.16)."""
    u, v = y[..., 0], y[..., 1]
    return torch.stack([1 + u * u * v - 4 * u, 3 * u - u * u * v], dim=-1)


def _brusselator_numpy(t, y):
    u, v = y
    return [1 + u * u * v - 4 * u, 3 * u - u * u * v]


def test_dop853_step_equals_scipy():
    """One step from the same state with the same h: y1, the error norm and the dense output agree
    with scipy's DOP853 (an independent implementation of Hairer's code) to round-off."""
    y0, h = np.array([1.5, 3.0]), 0.3
    theirs = DOP853(_brusselator_numpy, 0.0, y0, 10.0, first_step=h, rtol=1e-3, atol=1e-6)
    theirs.step()
    assert theirs.t == h
    rk = RungeKutta(TABLEAUS["dopri8"], F64, CPU)
    span, y = _span(0.0, h), torch.tensor(y0, dtype=F64)
    y1, ks = rk.step(_brusselator, span, y)
    assert np.abs(y1.numpy() - theirs.y).max() < 1e-14
    weighed = Tolerance(1e-3, 1e-6).weigh(y, y1)
    scale = 1e-6 + 1e-3 * np.maximum(np.abs(y0), np.abs(theirs.y))
    expected = theirs._estimate_error_norm(theirs.K, h, scale)
    # the estimates cancel increments h k of size ~1 down to ~1e-6: round-off bounds the agreement
    assert rk.error(span.h, ks, weighed).item() == pytest.approx(expected, rel=1e-9, abs=0)
    theta = torch.tensor([0.1, 0.45, 0.9], dtype=F64)
    stages = ks + rk.interpolant_stages(_brusselator, span, y, y1, ks)
    ours = rk.interpolate(theta, y, span.h, stages).numpy()
    assert np.abs(ours - theirs.dense_output()(theta.numpy() * h).T).max() < 1e-14


def test_dopri8_solution_equals_scipy_dop853_inside_steps():
    """A nonlinear problem at rtol=1e-10: outputs between the step ends (dense output of order 7)
    against scipy's DOP853 at rtol=1e-13."""
    t = torch.linspace(0.0, 10.0, 101, dtype=F64)
    y0 = torch.tensor([1.5, 3.0], dtype=F64)
    solution = physode.solve(_brusselator, y0, t, method="dopri8", rtol=1e-10, atol=1e-12)
    stats = solution.stats
    interpolating_steps = (stats.nfe - 2 - 12 * (stats.accepted + stats.rejected)) / 3
    assert 0 < interpolating_steps < stats.accepted  # outputs fell inside steps, several in some
    reference = solve_ivp(_brusselator_numpy, (0.0, 10.0), y0.numpy(), method="DOP853", t_eval=t.numpy(),
                          rtol=1e-13, atol=1e-14)
    assert np.abs(solution.ys.numpy() - reference.y.T).max() < 1e-9


class _Brusselator(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0, dtype=F64))
        self.b = nn.Parameter(torch.tensor(3.0, dtype=F64))

    def forward(self, t, y):
        u, v = y[..., 0], y[..., 1]
        return torch.stack([self.a + u * u * v - (self.b + 1) * u, self.b * u - u * u * v], dim=-1)


def test_dopri8_gradients_aca_direct_and_finite_differences():
    func = _Brusselator()
    y0 = torch.tensor([1.5, 3.0], dtype=F64)
    t = torch.linspace(0.0, 4.0, 9, dtype=F64)
    weights = torch.randn(len(t), 2, dtype=F64)
    inputs = [y0, func.a, func.b]

    def loss(gradient, y):
        return (physode.odeint(func, y, t, method="dopri8", rtol=1e-10, atol=1e-12, gradient=gradient) * weights).sum()

    grads = {}
    for gradient in ("aca", "direct"):
        leaf = y0.clone().requires_grad_(True)
        grads[gradient] = torch.autograd.grad(loss(gradient, leaf), [leaf, func.a, func.b])
    for g_aca, g_direct in zip(grads["aca"], grads["direct"]):
        assert (g_aca - g_direct).abs().max() < 1e-12 * (1 + g_direct.abs().max())
    eps = 1e-6
    with torch.no_grad():
        for tensor, g in zip(inputs, grads["aca"]):
            for k in range(tensor.numel()):
                values = []
                for sign in (1, -1):
                    tensor.view(-1)[k] += sign * eps
                    values.append(loss("aca", y0).item())
                    tensor.view(-1)[k] -= sign * eps
                assert g.reshape(-1)[k].item() == pytest.approx((values[0] - values[1]) / (2 * eps), rel=1e-6, abs=1e-8)


def test_dopri8_jacobian_and_jvp_match_finite_differences():
    func = _Brusselator()
    y0 = torch.tensor([1.5, 3.0], dtype=F64)
    t = torch.linspace(0.0, 4.0, 9, dtype=F64)
    settings = {"method": "dopri8", "rtol": 1e-10, "atol": 1e-12}
    jac = physode.jacobian(func, y0, t, **settings)
    eps = 1e-6
    with torch.no_grad():
        for k in range(2):
            step = torch.zeros(2, dtype=F64)
            step[k] = eps
            difference = (physode.odeint(func, y0 + step, t, **settings)
                          - physode.odeint(func, y0 - step, t, **settings)) / (2 * eps)
            assert (jac.y0[..., k] - difference).abs().max() < 1e-6
        results = []
        for sign in (1, -1):
            func.b += sign * eps
            results.append(physode.odeint(func, y0, t, **settings))
            func.b -= sign * eps
    assert (jac.params["b"] - (results[0] - results[1]) / (2 * eps)).abs().max() < 1e-6
    tangent = physode.jvp(func, y0, t, y0_tangents=torch.tensor([[1.0, -1.0]], dtype=F64), **settings).tangents[0]
    assert (tangent - (jac.y0[..., 0] - jac.y0[..., 1])).abs().max() < 1e-12


class _Counted:
    def __init__(self, func):
        self.func, self.calls = func, 0

    def __call__(self, t, y):
        self.calls += 1
        return self.func(t, y)


def test_dopri8_costs_12_evaluations_a_step_and_3_more_to_interpolate():
    rk = RungeKutta(TABLEAUS["dopri8"], F64, CPU)
    func, span, y = _Counted(_brusselator), _span(0.0, 0.1), torch.tensor([1.5, 3.0], dtype=F64)
    y1, ks = rk.step(func, span, y, carry=_brusselator(span.t0, y))
    assert func.calls == 12
    assert torch.equal(rk.carry(ks), _brusselator(span.t1, y1))  # FSAL: f(t1, y1) carried
    assert len(rk.interpolant_stages(func, span, y, y1, ks)) == 3 and func.calls == 15

    def nfe(times):
        stats = physode.solve(_brusselator, y, torch.tensor(times, dtype=F64), method="dopri8", rtol=1e-8).stats
        return stats.nfe, stats.accepted + stats.rejected

    # f(t0, y0), the initial step's probe, then 12 per step tried
    plain, steps = nfe([0.0, 5.0])
    assert plain == 2 + 12 * steps
    # the same steps; the three extra stages once for the step that holds both outputs
    assert nfe([0.0, 2.5, 2.5 + 1e-9, 5.0]) == (plain + 3, steps)


@pytest.mark.parametrize("name", ["heun2", "heun3", "rk38"])
def test_fixed_step_methods_equal_torchdiffeqs(name):
    """heun2, heun3 and rk38 are torchdiffeq's heun2, heun3 and rk4 (Kutta's 3/8 rule), on its grid."""
    t = torch.linspace(0.0, 2.0, 11, dtype=F64)
    y0 = torch.tensor([1.0, -0.5], dtype=F64)
    ours = physode.odeint(cos_growth, y0, t, method=name, options={"step_size": 0.05})
    theirs = torchdiffeq.odeint(cos_growth, y0, t, method={"rk38": "rk4"}.get(name, name),
                                options={"step_size": 0.05})
    assert (ours - theirs).abs().max() < 1e-14


def test_registry_of_the_new_methods():
    assert REGISTRY["adaptive_heun"] is REGISTRY["heun_euler"]
    for name in ("heun2", "heun3", "rk38"):
        assert REGISTRY[name].controller is None and not TABLEAUS[name].adaptive
    for name in ("fehlberg2", "dopri8"):
        assert REGISTRY[name].controller is not None and TABLEAUS[name].adaptive


def _order_conditions(tab, weights) -> list[float]:
    """sum_i w_i Phi_i(tree) - 1/gamma(tree) for the 8 rooted trees of order <= 4 (Butcher; Hairer,
    Norsett & Wanner, Solving ODEs I, II.2, Table 2.2)."""
    n = len(weights)
    a = np.array([[*row, *[0.0] * (n - len(row))] for row in tab.a][:n], dtype=float)
    c, w = np.array(tab.c[:n], dtype=float), np.array(weights, dtype=float)
    products = [(np.ones(n), 1), (c, 2), (c**2, 3), (a @ c, 6), (c**3, 4), (c * (a @ c), 8), (a @ c**2, 12),
                (a @ a @ c, 24)]
    return [w @ phi - 1 / gamma for phi, gamma in products]


@pytest.mark.parametrize("name", [name for name, tab in TABLEAUS.items() if tab.b_error is not None])
def test_embedded_formulas_satisfy_the_order_conditions(name):
    """b - b_error is a formula of order error_order (checked up to order 4)."""
    tab = TABLEAUS[name]
    embedded = [b - e for b, e in zip([*tab.b, *[0.0] * (len(tab.b_error) - len(tab.b))], tab.b_error)]
    trees = {1: 1, 2: 2, 3: 4, 4: 8}[min(tab.error_order, 4)]
    assert np.abs(_order_conditions(tab, embedded)[:trees]).max() < 1e-13
    if tab.error_order < 4:
        assert np.abs(_order_conditions(tab, embedded)[trees:]).max() > 1e-6
