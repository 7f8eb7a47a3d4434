"""The asynchronous leapfrog, its exact inverse, and MALI's constant-memory gradient."""

import math
import warnings

import pytest
import torch

import physode
from physode.solve import AsynchronousLeapfrog, Span
from problems import F64, Linear, Neural, cos_growth, cos_growth_exact, saved_numbers


def _span(t0, h):
    t0, h = torch.tensor(t0, dtype=F64), torch.tensor(h, dtype=F64)
    return Span(t0, t0 + h, h)


@pytest.mark.parametrize("eta", [1.0, 0.8])
def test_inverse_steps_rebuild_the_start(eta):
    """N forward ALF steps then N inverse steps return to (z0, v0) to round-off."""
    func, alf = Neural(), AsynchronousLeapfrog(eta)
    z0 = torch.randn(5, 3, dtype=F64)
    with torch.no_grad():
        z, v = z0, func(torch.tensor(0.0, dtype=F64), z0)
        v0, spans = v, [_span(0.013 * i, 0.013) for i in range(100)]
        for span in spans:
            z, ks = alf.step(func, span, z, v)
            v = ks[-1]
        for span in reversed(spans):
            z, v = alf.inverse(func, span, z, v)
    bound = 1e-13 * abs(1 / (2 * eta - 1)) ** len(spans)
    assert (z - z0).abs().max() < bound and (v - v0).abs().max() < bound


def test_alf_is_second_order():
    y0, t = torch.tensor([1.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    exact = cos_growth_exact(t[-1], y0)
    errors = [(physode.odeint(cos_growth, y0, t, method="alf", options={"step_size": 2.0**-k})[-1] - exact).abs().item()
              for k in (6, 7)]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(2, abs=0.1)


def test_adaptive_alf_meets_its_tolerance_and_lands_on_outputs():
    y0, t = torch.tensor([1.0, -2.0], dtype=F64), torch.linspace(0.0, 3.0, 7, dtype=F64)
    seen = []

    def f(s, y):
        seen.append(s.item())
        return cos_growth(s, y)

    ys = physode.odeint(f, y0, t, method="alf", rtol=1e-8, atol=1e-8)
    assert (ys - cos_growth_exact(t[:, None], y0)).abs().max() < 1e-6
    # one evaluation per step, at its midpoint; the step ends (= output times) are reached exactly
    assert all(t[0].item() <= s <= t[-1].item() for s in seen)


@pytest.mark.parametrize("gradient", ["mali", "aca"])
def test_mali_and_aca_equal_direct_through_the_same_alf_steps(gradient):
    func = Neural()
    y0 = torch.randn(4, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.3, 1.1, 2.0], dtype=F64, requires_grad=True)

    def grads(g):
        ys = physode.odeint(func, y0, t, method="alf", rtol=1e-4, atol=1e-6, gradient=g)
        weights = torch.linspace(0.5, 1.5, ys.numel(), dtype=F64).reshape(ys.shape)
        return torch.autograd.grad((weights * ys**2).sum(), [y0, t, *func.parameters()])

    for d, m in zip(grads("direct"), grads(gradient)):
        assert (d - m).abs().max() <= 1e-8 * (1 + d.abs().max())


def test_mali_tuple_state_backwards_in_time():
    k = torch.nn.Parameter(torch.tensor(2.0, dtype=F64))
    x0 = torch.tensor([1.0, 0.3], dtype=F64, requires_grad=True)
    v0 = torch.tensor([0.0, -0.5], dtype=F64, requires_grad=True)
    t = torch.tensor([1.5, 0.5, -0.2], dtype=F64, requires_grad=True)

    def grads(g):
        xs, vs = physode.odeint(lambda s, st: (st[1], -k * st[0]), (x0, v0), t, method="alf",
                                rtol=1e-6, atol=1e-6, gradient=g, params=(k,))
        return torch.autograd.grad((xs**2).sum() + vs.sum(), [x0, v0, t, k])

    for d, m in zip(grads("direct"), grads("mali")):
        assert (d - m).abs().max() <= 1e-8 * (1 + d.abs().max())


def test_mali_gradient_of_the_exponential_closed_form():
    """z' = a z, L = z(T)^2 = z0^2 exp(2 a (T - t0)): dL/dz0, dL/da, dL/dT and dL/dt0."""
    a, z0, t0, T = 0.5, 1.3, 0.2, 1.7
    func = Linear(a)
    y0 = torch.tensor([z0], dtype=F64, requires_grad=True)
    t = torch.tensor([t0, T], dtype=F64, requires_grad=True)
    ys = physode.odeint(func, y0, t, method="alf", options={"step_size": 1e-3}, gradient="mali")
    g_y0, g_t, g_a = torch.autograd.grad(ys[-1].square().sum(), [y0, t, func.a])
    L = z0**2 * math.exp(2 * a * (T - t0))  # second order: h^2 = 1e-6
    assert g_y0.item() == pytest.approx(2 * L / z0, rel=1e-6)
    assert g_a.item() == pytest.approx(2 * (T - t0) * L, rel=1e-6)
    assert g_t[1].item() == pytest.approx(2 * a * L, rel=1e-6)
    assert g_t[0].item() == pytest.approx(-2 * a * L, rel=1e-6)


def test_mali_saves_nothing_per_step():
    """The forward pass saves for autograd only what one evaluation of func at the call does (to
    check func's dependencies) and the output times, however many steps it takes."""
    func = Neural()
    y0 = torch.randn(8, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 3.0], dtype=F64)
    one_evaluation = saved_numbers(lambda: func(t[0], y0.detach()))
    steps = []
    saved = saved_numbers(lambda: steps.append(physode.solve(func, y0, t, method="alf", gradient="mali", rtol=1e-7)))
    assert steps[0].stats.accepted > 100
    assert saved <= one_evaluation + len(t) + 2 * y0.numel()


def test_damped_alf_warns_when_the_reconstruction_fails():
    func = Neural()
    y0 = torch.randn(4, 3, dtype=F64)
    t = torch.tensor([0.0, 3.0], dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ys = physode.odeint(func, y0, t, method="alf", gradient="mali", rtol=1e-6)
        ys.sum().backward()
    ys = physode.odeint(func, y0, t, method="alf", gradient="mali", rtol=1e-6, options={"eta": 0.7})
    with pytest.warns(RuntimeWarning, match="gradient='mali': rebuilding the initial state"):
        ys.sum().backward()


def test_mali_needs_alf():
    with pytest.raises(ValueError, match="gradient='mali' differentiates the asynchronous leapfrog: use method='alf'"):
        physode.odeint(Linear(), torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), gradient="mali")


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.5, -1.0])
def test_eta_range(eta):
    with pytest.raises(ValueError, match=r"options\['eta'\] must be in \(0, 1\] and not 0.5"):
        physode.odeint(Linear(), torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), method="alf",
                       options={"eta": eta})


def test_eta_is_only_for_alf():
    with pytest.raises(ValueError, match="options\\['eta'\\] is the damping of method 'alf'"):
        physode.odeint(Linear(), torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), options={"eta": 0.9})
