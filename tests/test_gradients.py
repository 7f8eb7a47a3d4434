"""Gradients against closed forms, finite differences and each other."""

import gc
import math

import pytest
import torch

import physode
from problems import F64, Linear, Neural, oscillator
from physode.solve import TABLEAUS

GRADIENTS = ["aca", "direct", "adjoint"]
ADAPTIVE = [name for name, tab in TABLEAUS.items() if tab.adaptive]
FIXED = [name for name, tab in TABLEAUS.items() if not tab.adaptive]


def _options(method, **extra):
    return {"step_size": 0.05, **extra} if method in FIXED else extra or None


def _gradients(func, y0, t, gradient, method="dopri5", tol=1e-9, options=None, weights=None):
    """d/d(y0, t, params) of L = sum(w * ys^2), for the given gradient method."""
    ys = physode.odeint(func, y0, t, method=method, rtol=tol, atol=tol, gradient=gradient, options=options)
    weights = torch.linspace(0.5, 1.5, ys.numel(), dtype=ys.dtype).reshape(ys.shape) if weights is None else weights
    loss = (weights * ys**2).sum()
    return torch.autograd.grad(loss, [y0, t, *func.parameters()])


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_closed_form_gradient_of_exponential(gradient):
    """z' = a z, L = z(T)^2 = z0^2 exp(2 a (T - t0)): dL/dz0, dL/da, dL/dT and dL/dt0."""
    a, z0, t0, T = 0.5, 1.3, 0.2, 1.7
    func = Linear(a)
    y0 = torch.tensor([z0], dtype=F64, requires_grad=True)
    t = torch.tensor([t0, T], dtype=F64, requires_grad=True)
    ys = physode.odeint(func, y0, t, rtol=1e-11, atol=1e-11, gradient=gradient)
    g_y0, g_t, g_a = torch.autograd.grad(ys[-1].square().sum(), [y0, t, func.a])
    L = z0**2 * math.exp(2 * a * (T - t0))
    assert g_y0.item() == pytest.approx(2 * L / z0, rel=1e-8)
    assert g_a.item() == pytest.approx(2 * (T - t0) * L, rel=1e-8)
    assert g_t[1].item() == pytest.approx(2 * a * L, rel=1e-8)
    assert g_t[0].item() == pytest.approx(-2 * a * L, rel=1e-8)


@pytest.mark.parametrize("method", list(TABLEAUS))
@pytest.mark.parametrize("land", [False, True])
def test_aca_equals_direct(method, land):
    func = Neural()
    y0 = torch.randn(4, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.37, 0.9, 1.5, 2.0], dtype=F64, requires_grad=True)
    options = _options(method, land_on_outputs=land)
    direct = _gradients(func, y0, t, "direct", method, 1e-6, options)
    aca = _gradients(func, y0, t, "aca", method, 1e-6, options)
    for d, a in zip(direct, aca):
        assert (d - a).abs().max() <= 1e-10 * (1 + d.abs().max())


@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_aca_equals_direct_backwards_in_time_with_tuple_state(gradient):
    k = torch.nn.Parameter(torch.tensor(3.0, dtype=F64))

    def f(t, state):
        x, v = state
        return v, -k * x - 0.1 * v * torch.sin(t)

    x0 = torch.tensor([1.0, 0.2], dtype=F64, requires_grad=True)
    v0 = torch.tensor([0.0, -1.0], dtype=F64, requires_grad=True)
    t = torch.tensor([2.0, 1.1, 0.4, -0.5], dtype=F64, requires_grad=True)

    def grads(g):
        xs, vs = physode.odeint(f, (x0, v0), t, rtol=1e-7, atol=1e-7, gradient=g, params=(k,))
        return torch.autograd.grad((xs**2).sum() + (vs**3).sum(), [x0, v0, t, k])

    for d, a in zip(grads("direct"), grads(gradient)):
        assert (d - a).abs().max() <= 1e-10 * (1 + d.abs().max())


@pytest.mark.parametrize("gradient", GRADIENTS)
@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_gradcheck(gradient, method):
    """torch.autograd.gradcheck in float64 on y0, t and the parameters of a small vector field."""
    w = torch.tensor([[-0.3, 1.0], [-1.2, -0.1]], dtype=F64, requires_grad=True)

    def f(t, y):
        return torch.tanh(y @ w.T) + 0.1 * t * y

    options = {"step_size": 0.01} if method == "rk4" else None

    def run(y0, t, w_):
        return physode.odeint(f, y0, t, method=method, rtol=1e-12, atol=1e-12, gradient=gradient,
                              options=options, params=(w_,))

    y0 = torch.tensor([[0.5, -0.2]], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.4, 1.0], dtype=F64, requires_grad=True)
    # the adjoint's gradient is of the continuous problem; rk4 on torchdiffeq's grid is accurate to ~1e-9
    assert torch.autograd.gradcheck(run, (y0, t, w), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_output_time_gradients_match_finite_differences(gradient):
    func = Neural(dim=2)
    y0 = torch.tensor([0.4, -0.6], dtype=F64)
    t = torch.tensor([0.1, 0.6, 1.3, 2.0], dtype=F64, requires_grad=True)

    def loss(times):
        ys = physode.odeint(func, y0, times, rtol=1e-12, atol=1e-12, gradient=gradient)
        return (ys[1:] ** 2 * torch.tensor([[1.0], [2.0], [3.0]], dtype=F64)).sum()

    (g_t,) = torch.autograd.grad(loss(t), [t])
    eps = 1e-6
    for k in range(len(t)):
        dt = torch.zeros_like(t)
        dt[k] = eps
        with torch.no_grad():
            fd = (loss(t + dt) - loss(t - dt)) / (2 * eps)
        assert g_t[k].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-7)


def test_direct_supports_double_backward():
    """L = z0^2 exp(2 a T): d2L/da2 = 4 T^2 L."""
    func = Linear(0.3)
    y0 = torch.tensor([1.1], dtype=F64)
    t = torch.tensor([0.0, 1.5], dtype=F64)
    ys = physode.odeint(func, y0, t, rtol=1e-12, atol=1e-12, gradient="direct")
    (g,) = torch.autograd.grad(ys[-1].square().sum(), [func.a], create_graph=True)
    (h,) = torch.autograd.grad(g, [func.a])
    L = 1.1**2 * math.exp(2 * 0.3 * 1.5)
    assert h.item() == pytest.approx(4 * 1.5**2 * L, rel=1e-8)


def test_aca_refuses_double_backward():
    func = Linear(0.3)
    y0 = torch.tensor([1.1], dtype=F64)
    ys = physode.odeint(func, y0, torch.tensor([0.0, 1.5], dtype=F64), gradient="aca")
    with pytest.raises(RuntimeError, match="does not support double backward"):
        torch.autograd.grad(ys[-1].square().sum(), [func.a], create_graph=True)


def test_plain_function_with_explicit_params():
    a = torch.tensor(0.5, dtype=F64, requires_grad=True)
    y0 = torch.tensor([2.0], dtype=F64)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    ys = physode.odeint(lambda t, z: a * z, y0, t, rtol=1e-11, atol=1e-11, params=(a,))
    (g,) = torch.autograd.grad(ys[-1].sum(), [a])
    assert g.item() == pytest.approx(2.0 * math.exp(0.5), rel=1e-8)


def test_bound_method_of_a_module_finds_its_parameters():
    func = Linear(0.5)
    y0 = torch.tensor([2.0], dtype=F64)
    ys = physode.odeint(func.forward, y0, torch.tensor([0.0, 1.0], dtype=F64), rtol=1e-11, atol=1e-11)
    (g,) = torch.autograd.grad(ys[-1].sum(), [func.a])
    assert g.item() == pytest.approx(2.0 * math.exp(0.5), rel=1e-8)


def test_backward_stats_are_reported():
    func = Neural()
    y0 = torch.randn(3, dtype=F64)
    sol = physode.solve(func, y0, torch.tensor([0.0, 1.0], dtype=F64), gradient="aca")
    assert sol.stats.nfe_backward == 0
    sol.ys.sum().backward()
    # one recomputation of the 6 solution stages per accepted step
    assert sol.stats.accepted_backward == sol.stats.accepted
    assert sol.stats.nfe_backward == 6 * sol.stats.accepted


def test_aca_under_no_grad_keeps_no_states():
    """Without grad mode, aca keeps no state per step: the live tensors of the state's shape stay
    a handful during a solve of about 100 steps, where with grad mode they grow with the steps."""
    shape = (7, 3)

    class Watched(Neural):
        calls = peak = 0

        def forward(self, t, y):
            self.calls += 1
            if self.calls % 50 == 0:
                live = sum(1 for o in gc.get_objects() if type(o) is torch.Tensor and o.shape == shape)
                self.peak = max(self.peak, live)
            return super().forward(t, y)

    y0, t = torch.randn(shape, dtype=F64), torch.tensor([0.0, 30.0], dtype=F64)
    peaks = {}
    for grad_mode in (False, True):
        func = Watched()
        with torch.set_grad_enabled(grad_mode):
            solution = physode.solve(func, y0, t, gradient="aca")
        peaks[grad_mode] = func.peak
    assert solution.stats.accepted > 50
    assert peaks[False] < 20 and peaks[True] > 50


def test_float32_gradients_stay_float32():
    func = Neural(dtype=torch.float32)
    y0 = torch.randn(2, 3, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.0], requires_grad=True)
    for gradient in GRADIENTS:
        grads = _gradients(func, y0, t, gradient, tol=1e-5)
        assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_adjoint_agrees_with_aca_at_tight_tolerance():
    func = Neural()
    y0 = torch.randn(4, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64, requires_grad=True)
    aca = _gradients(func, y0, t, "aca", tol=1e-11)
    adjoint = _gradients(func, y0, t, "adjoint", tol=1e-11)
    for a, b in zip(aca, adjoint):
        assert (a - b).abs().max() <= 1e-7 * (1 + a.abs().max())


def test_oscillator_gradient_closed_form():
    """x(T) = x0 cos(2T) + v0/2 sin(2T): d x(T) / d(x0, v0, T)."""
    x0 = torch.tensor([0.7], dtype=F64, requires_grad=True)
    v0 = torch.tensor([-0.4], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 1.3], dtype=F64, requires_grad=True)
    xs, _ = physode.odeint(oscillator, (x0, v0), t, rtol=1e-11, atol=1e-11, params=())
    g_x0, g_v0, g_t = torch.autograd.grad(xs[-1].sum(), [x0, v0, t])
    T = 1.3
    assert g_x0.item() == pytest.approx(math.cos(2 * T), rel=1e-8)
    assert g_v0.item() == pytest.approx(math.sin(2 * T) / 2, rel=1e-8)
    assert g_t[1].item() == pytest.approx(-2 * 0.7 * math.sin(2 * T) + (-0.4) * math.cos(2 * T), rel=1e-8)


@pytest.mark.parametrize("gradient", ["aca", "adjoint"])
def test_func_closing_over_y0_or_t_is_refused(gradient):
    """Methods that differentiate only the declared params must not drop a closure's dependence."""
    y0 = torch.tensor([1.0, 0.5], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 2.0], dtype=F64, requires_grad=True)
    with pytest.raises(ValueError, match="such as y0, t or a tensor it closes over"):
        physode.odeint(lambda s, y: -(y - 2 * y0), y0, t, params=(), gradient=gradient)
    with pytest.raises(ValueError, match="such as y0, t or a tensor it closes over"):
        physode.odeint(lambda s, y: -y * t[-1], y0, t, params=(), gradient=gradient)
    ys = physode.odeint(lambda s, y: -(y - 2 * y0), y0, t, gradient="direct", rtol=1e-11, atol=1e-11)
    (g,) = torch.autograd.grad(ys[-1, 0], [y0])
    assert g[0].item() == pytest.approx(2 - math.exp(-2), rel=1e-8)


@pytest.mark.parametrize("gradient", GRADIENTS)
def test_repeated_params_count_once(gradient):
    a = torch.tensor(0.5, dtype=F64, requires_grad=True)
    ys = physode.odeint(lambda t, z: a * z, torch.tensor([2.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                        rtol=1e-11, atol=1e-11, gradient=gradient, params=(a, a))
    (g,) = torch.autograd.grad(ys[-1].sum(), [a])
    assert g.item() == pytest.approx(2.0 * math.exp(0.5), rel=1e-8)


def test_aca_with_a_tensor_built_from_params_outside_func():
    p = torch.tensor([[0.1, -0.4], [0.3, -0.2]], dtype=F64, requires_grad=True)
    y0 = torch.tensor([1.0, -1.0], dtype=F64)
    t = torch.tensor([0.0, 0.7, 1.5], dtype=F64)

    def grad(gradient):
        matrix = 2.0 * p  # one graph, shared by every step's recomputation
        ys = physode.odeint(lambda s, y: y @ matrix.T, y0, t, gradient=gradient, params=(p,))
        return torch.autograd.grad(ys.square().sum(), [p])[0]

    assert (grad("aca") - grad("direct")).abs().max() < 1e-12


@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_fixed_step_time_gradient_is_that_of_the_steps_taken(gradient):
    """Euler with h = 0.1 on y' = y over [t0, T] = [0, 1.05]: ten steps of 0.1 and a last one of
    T - t0 - 1, so y(T) = 1.1^10 (1 + T - t0 - 1): dy(T)/dT = 1.1^10 and dy(T)/dt0 = -1.1^10."""
    t = torch.tensor([0.0, 1.05], dtype=F64, requires_grad=True)
    ys = physode.odeint(lambda s, y: y, torch.tensor([1.0], dtype=F64), t, method="euler",
                        options={"step_size": 0.1}, gradient=gradient, params=())
    (g,) = torch.autograd.grad(ys[-1].sum(), [t])
    assert ys[-1].item() == pytest.approx(1.1**10 * 1.05, rel=1e-13)
    assert g[1].item() == pytest.approx(1.1**10, rel=1e-13)
    assert g[0].item() == pytest.approx(-(1.1**10), rel=1e-13)
