"""Solutions against closed forms and scipy at tight tolerance."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import physode
from problems import F64, Neural, cos_growth, cos_growth_exact, exp_decay, lotka_volterra, oscillator, van_der_pol

ADAPTIVE = ["heun_euler", "bosh3", "dopri5", "tsit5"]
FIXED = {"euler": 1e-4, "midpoint": 1e-3, "rk4": 1e-2}
# (rtol, expected max error) per adaptive method on the closed-form problems
TIGHT = {"heun_euler": (1e-7, 1e-5), "bosh3": (1e-9, 1e-7), "dopri5": (1e-11, 1e-9), "tsit5": (1e-11, 1e-9)}


@pytest.mark.parametrize("method", ADAPTIVE)
def test_adaptive_methods_match_closed_form_with_dense_output(method):
    rtol, bound = TIGHT[method]
    t = torch.linspace(0.0, 6.0, 41, dtype=F64)
    y0 = torch.tensor([1.0, -0.5], dtype=F64)
    ys = physode.odeint(cos_growth, y0, t, method=method, rtol=rtol, atol=rtol)
    assert (ys - cos_growth_exact(t[:, None], y0)).abs().max() < bound


@pytest.mark.parametrize("method", list(FIXED))
def test_fixed_step_methods_match_closed_form(method):
    t = torch.linspace(0.0, 2.0, 9, dtype=F64)
    y0 = torch.tensor([2.0], dtype=F64)
    ys = physode.odeint(exp_decay, y0, t, method=method, options={"step_size": FIXED[method]})
    assert (ys - y0 * torch.exp(-0.7 * t[:, None])).abs().max() < 5e-5


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "rk4"])
def test_tuple_state_harmonic_oscillator(method):
    t = torch.linspace(0.0, 3.0, 13, dtype=F64)
    x0 = torch.tensor([1.0, 0.5, -1.0], dtype=F64)
    v0 = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
    options = {"step_size": 1e-3} if method == "rk4" else None
    xs, vs = physode.odeint(oscillator, (x0, v0), t, method=method, rtol=1e-10, atol=1e-10, options=options)
    assert xs.shape == (13, 3) and vs.shape == (13, 3)
    c, s = torch.cos(2 * t)[:, None], torch.sin(2 * t)[:, None]
    assert (xs - (x0 * c + v0 / 2 * s)).abs().max() < 1e-8
    assert (vs - (-2 * x0 * s + v0 * c)).abs().max() < 1e-8


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3"])
def test_backward_in_time(method):
    t = torch.linspace(3.0, -1.0, 17, dtype=F64)
    y0 = torch.tensor([0.3], dtype=F64)
    ys = physode.odeint(cos_growth, y0, t, method=method, rtol=1e-10, atol=1e-10)
    assert (ys - cos_growth_exact(t[:, None], y0, t0=3.0)).abs().max() < 1e-7


def _scipy(f, y0, t):
    sol = solve_ivp(lambda s, y: f(torch.tensor(s), torch.tensor(y)).numpy(), (t[0], t[-1]), y0,
                    method="DOP853", t_eval=t, rtol=1e-13, atol=1e-13)
    return sol.y.T


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
@pytest.mark.parametrize("name", ["van_der_pol", "lotka_volterra"])
def test_against_scipy_dop853(method, name):
    f, y0, T = {"van_der_pol": (van_der_pol(2.0), [2.0, 0.0], 12.0), "lotka_volterra": (lotka_volterra, [1.0, 1.0], 10.0)}[name]
    t = np.linspace(0.0, T, 57)
    reference = _scipy(f, y0, t)
    ys = physode.odeint(f, torch.tensor(y0, dtype=F64), torch.tensor(t), method=method, rtol=1e-10, atol=1e-10)
    assert np.abs(ys.numpy() - reference).max() < 1e-7


def test_func_is_never_evaluated_outside_the_span():
    seen = []

    def f(t, y):
        seen.append(t.item())
        return van_der_pol(1.0)(t, y)

    for t in (torch.tensor([0.0, 0.3, 2.5], dtype=F64), torch.tensor([2.5, 1.0, -0.5], dtype=F64)):
        for options in (None, {"land_on_outputs": True}):
            seen.clear()
            physode.odeint(f, torch.tensor([2.0, 0.0], dtype=F64), t, rtol=1e-3, atol=1e-3, options=options)
            lo, hi = t.min().item(), t.max().item()
            assert lo <= min(seen) and max(seen) <= hi


def test_land_on_outputs_steps_onto_every_output_time():
    t = torch.tensor([0.0, 0.1234, 0.5, 0.77, 1.0], dtype=F64)
    seen = []

    def f(t, y):
        seen.append(t.item())
        return cos_growth(t, y)

    y0 = torch.tensor([1.0], dtype=F64)
    sol = physode.solve(f, y0, t, rtol=1e-9, atol=1e-9, options={"land_on_outputs": True})
    for tk in t.tolist():
        assert min(abs(s - tk) for s in seen) < 1e-15
    assert (sol.ys - cos_growth_exact(t[:, None], y0)).abs().max() < 1e-8  # a global error of the size of the tolerance


def test_dopri5_costs_six_evaluations_per_step():
    sol = physode.solve(van_der_pol(3.0), torch.tensor([2.0, 0.0], dtype=F64), torch.tensor([0.0, 10.0], dtype=F64))
    assert sol.stats.rejected > 0
    # f(t0, y0) and the initial-step probe, then 6 new stages per attempted step (FSAL)
    assert sol.stats.nfe == 2 + 6 * (sol.stats.accepted + sol.stats.rejected)


def test_per_component_tolerances():
    y0 = torch.tensor([1.0, 1.0], dtype=F64)
    t = torch.tensor([0.0, 5.0], dtype=F64)
    loose = physode.solve(cos_growth, y0, t, rtol=1e-3, atol=1e-3)
    mixed = physode.solve(cos_growth, y0, t, rtol=torch.tensor([1e-3, 1e-10], dtype=F64), atol=torch.tensor([1e-3, 1e-10], dtype=F64))
    tight = physode.solve(cos_growth, y0, t, rtol=1e-10, atol=1e-10)
    assert loose.stats.accepted < mixed.stats.accepted <= tight.stats.accepted
    exact = cos_growth_exact(t[-1], y0)
    assert (mixed.ys[-1] - exact).abs().max() < 1e-8 < (loose.ys[-1] - exact).abs().max()


def test_tuple_state_takes_tuple_tolerances():
    x0, v0 = torch.tensor([1.0], dtype=F64), torch.tensor([0.0], dtype=F64)
    t = torch.tensor([0.0, 2.0], dtype=F64)
    sol = physode.solve(oscillator, (x0, v0), t, rtol=(1e-10, torch.tensor([1e-10], dtype=F64)), atol=1e-10)
    assert abs(sol.ys[0][-1].item() - math.cos(4.0)) < 1e-8


def test_max_step_and_first_step():
    y0 = torch.tensor([1.0], dtype=F64)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    capped = physode.solve(exp_decay, y0, t, options={"max_step": 0.01})
    assert capped.stats.accepted >= 100
    seen = []

    def f(t, y):
        seen.append(t.item())
        return exp_decay(t, y)

    physode.solve(f, y0, t, options={"first_step": 0.125})
    # with first_step given there is no initial-step probe: the second evaluation is stage 2 of step 1
    assert seen[1] == pytest.approx(0.2 * 0.125)


def test_adaptive_method_with_a_fixed_step():
    """Any method takes options={"step_size": h}: dopri5's fifth order shows through the public API."""
    y0, t = torch.tensor([1.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    exact = cos_growth_exact(t[-1], y0)
    errors = [(physode.odeint(cos_growth, y0, t, options={"step_size": h})[-1] - exact).abs().item() for h in (1 / 16, 1 / 32)]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(5, abs=0.3)


def test_float32_state_stays_float32():
    torch.set_default_dtype(torch.float64)
    try:
        y0 = torch.tensor([1.0, 2.0], dtype=torch.float32)
        sol = physode.solve(cos_growth, y0, torch.linspace(0, 2, 5), rtol=1e-5, atol=1e-6)
    finally:
        torch.set_default_dtype(torch.float32)
    assert sol.ys.dtype == torch.float32 and sol.ts.dtype == torch.float32
    exact = cos_growth_exact(sol.ts[:, None], y0)
    assert ((sol.ys - exact) / exact).abs().max() < 1e-4


def test_single_output_time_returns_the_initial_state():
    y0 = torch.tensor([1.0, 2.0], dtype=F64)
    ys = physode.odeint(exp_decay, y0, torch.tensor([0.5], dtype=F64))
    assert ys.shape == (1, 2) and torch.equal(ys[0], y0)


def _counted(f):
    calls = [0]

    def counted(t, y):
        calls[0] += 1
        return f(t, y)
    return counted, calls


@pytest.mark.parametrize("problem", ["neural", "van_der_pol", "lotka_volterra"])
def test_dopri5_takes_no_more_evaluations_than_torchdiffeq_at_equal_accuracy(problem):
    """At the same tolerance, dopri5 costs at most torchdiffeq's evaluations, and its error against
    scipy's DOP853 at 1e-13 is at most 1.5 times torchdiffeq's."""
    import torchdiffeq

    torch.manual_seed(0)
    f, y0, t = {
        "neural": (Neural(4, 32).requires_grad_(False), torch.randn(4, dtype=F64), torch.linspace(0, 10, 50, dtype=F64)),
        "van_der_pol": (van_der_pol(1.0), torch.tensor([2.0, 0.0], dtype=F64), torch.linspace(0, 20, 50, dtype=F64)),
        "lotka_volterra": (lotka_volterra, torch.tensor([1.0, 2.0], dtype=F64), torch.linspace(0, 15, 30, dtype=F64)),
    }[problem]
    exact = solve_ivp(lambda s, y: f(torch.tensor(s, dtype=F64), torch.from_numpy(y)).numpy(), (0, t[-1].item()),
                      y0.numpy(), method="DOP853", t_eval=t.numpy(), rtol=1e-13, atol=1e-13).y.T
    results = {}
    for name, odeint in (("physode", physode.odeint), ("torchdiffeq", torchdiffeq.odeint)):
        counted, calls = _counted(f)
        ys = odeint(counted, y0, t, rtol=1e-6, atol=1e-6)
        results[name] = calls[0], np.abs(ys.numpy() - exact).max()
    (nfe, error), (nfe_td, error_td) = results["physode"], results["torchdiffeq"]
    assert nfe <= nfe_td and error <= 1.5 * error_td, results
