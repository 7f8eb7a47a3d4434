"""Events: location against closed forms, differentiable event times against closed-form derivatives,
finite differences and between gradient methods, hybrid systems with resets, and the errors."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torchdiffeq
from torch import nn

from physode import SolverError
from physode.events import Event, odeint_event, odeint_until_event, solve_hybrid

F64 = torch.float64
TIGHT = {"rtol": 1e-10, "atol": 1e-12}
G = 9.81


def scalar(x):
    return torch.tensor(x, dtype=F64, requires_grad=True)


class Decay(nn.Module):
    """y' = -k y."""

    def __init__(self, k):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(k, dtype=F64))

    def forward(self, t, y):
        return -self.k * y


class Fall(nn.Module):
    """Height and velocity under gravity g: h' = v, v' = -g."""

    def __init__(self, g):
        super().__init__()
        self.g = nn.Parameter(torch.tensor(g, dtype=F64))

    def forward(self, t, y):
        return torch.stack([y[1], -self.g * torch.ones_like(y[1])])


class Oscillator(nn.Module):
    """x'' = -omega^2 x as a tuple state (x, v): x = cos(omega t) from (1, 0)."""

    def __init__(self, omega):
        super().__init__()
        self.omega = nn.Parameter(torch.tensor(omega, dtype=F64))

    def forward(self, t, state):
        x, v = state
        return v, -self.omega ** 2 * x


@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_threshold_crossing_of_linear_decay(gradient):
    """y' = -k y from y0 at t0 crosses c at t* = t0 + log(y0 / c) / k, where y(t*) = c."""
    func, y0, c, t0 = Decay(0.7), scalar(2.0), scalar(0.5), scalar(0.3)
    event_t, solution = odeint_event(func, y0, t0, event_fn=lambda t, y: y - c, gradient=gradient, **TIGHT)
    assert solution.shape == (2,)
    assert event_t.item() == pytest.approx(0.3 + math.log(4.0) / 0.7, abs=1e-10)
    assert solution[0].item() == 2.0 and solution[1].item() == pytest.approx(0.5, abs=1e-15)
    grads = torch.autograd.grad(event_t, (y0, func.k, c, t0), retain_graph=True)
    exact = (1 / (0.7 * 2.0), -math.log(4.0) / 0.7 ** 2, -1 / (0.7 * 0.5), 1.0)
    for g, e in zip(grads, exact):
        assert g.item() == pytest.approx(e, rel=1e-8)
    # y(t*) = c whatever y0, k and t0 are: its derivatives are 0, 0, 0 and 1 for c
    grads = torch.autograd.grad(solution[1], (y0, func.k, c, t0))
    assert [g.item() for g in grads] == pytest.approx([0.0, 0.0, 1.0, 0.0], abs=1e-8)


@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_falling_body_hits_the_ground(gradient):
    """From height h with upward velocity u: t* = (u + s) / g with s = sqrt(u^2 + 2 g h), and the
    impact velocity v* = -s (dopri5 integrates the quadratic exactly: round-off agreement)."""
    h, u, g = 2.0, 1.5, 9.81
    func, y0 = Fall(g), torch.tensor([h, u], dtype=F64, requires_grad=True)
    event_t, solution = odeint_event(func, y0, 0.0, event_fn=lambda t, y: y[0], gradient=gradient)
    s = math.sqrt(u ** 2 + 2 * g * h)
    assert event_t.item() == pytest.approx((u + s) / g, rel=1e-13)
    assert solution[1].tolist() == pytest.approx([0.0, -s], abs=1e-12)
    d_y0, d_g = torch.autograd.grad(event_t, (y0, func.g), retain_graph=True)
    assert d_y0.tolist() == pytest.approx([1 / s, (1 + u / s) / g], rel=1e-12)
    assert d_g.item() == pytest.approx(h / (g * s) - (u + s) / g ** 2, rel=1e-12)
    d_y0, d_g = torch.autograd.grad(solution[1, 1], (y0, func.g))  # v* = -s
    assert d_y0.tolist() == pytest.approx([-g / s, -u / s], rel=1e-12)
    assert d_g.item() == pytest.approx(-h / s, rel=1e-12)


def test_reverse_time_and_torchdiffeq_interface():
    """Backward in time from x(0) = 1 of x' = x (x = e^t) to x = 0.5 at t = -log 2; odeint_until_event
    takes t = [t0, t1] with t1 giving only the direction, and a tuple state."""
    y0 = scalar(1.0)
    event_t, solution = odeint_event(lambda t, y: y, y0, torch.tensor(0.0, dtype=F64), event_fn=lambda t, y: y - 0.5,
                                     reverse_time=True, gradient="direct", **TIGHT)
    assert event_t.item() == pytest.approx(-math.log(2.0), abs=1e-10)
    assert solution.tolist() == pytest.approx([1.0, 0.5], abs=1e-15)
    assert torch.autograd.grad(event_t, y0)[0].item() == pytest.approx(-1.0, rel=1e-8)  # t* = log(0.5 / y0)
    func, x0 = Oscillator(2.0), scalar(1.0)
    event_t, (x, v) = odeint_until_event(func, (x0, torch.tensor(0.0, dtype=F64)), torch.tensor([0.0, 5.0]),
                                         event_fn=lambda t, s: s[0], **TIGHT)
    assert event_t.item() == pytest.approx(math.pi / 4, abs=1e-10)
    assert x.shape == v.shape == (2,) and v[1].item() == pytest.approx(-2.0, abs=1e-9)
    assert torch.autograd.grad(event_t, func.omega)[0].item() == pytest.approx(-math.pi / 8, rel=1e-8)


@pytest.mark.parametrize("reverse_time", [False, True])
def test_agrees_with_torchdiffeq(reverse_time):
    """torchdiffeq's odeint_event on Lotka-Volterra with two event values (the first to change sign
    fires): the same event time, state and gradients for y0, a parameter and t0, to its tolerance."""

    class LotkaVolterra(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.tensor(1.5, dtype=F64))

        def forward(self, t, y):
            return torch.stack([self.a * y[0] - y[0] * y[1], -3.0 * y[1] + y[0] * y[1]])

    found = []
    for solve in (odeint_event, torchdiffeq.odeint_event):
        func, y0, t0 = LotkaVolterra(), torch.tensor([1.0, 1.0], dtype=F64, requires_grad=True), scalar(0.2)
        event_t, solution = solve(func, y0, t0, event_fn=lambda t, y: torch.stack([y[0] - 2.5, y[1] - 0.3]),
                                  reverse_time=reverse_time, **TIGHT)
        grads = torch.autograd.grad(event_t, (y0, func.a, t0))
        found.append([event_t.item(), *solution[1].tolist(), *grads[0].tolist(), grads[1].item(), grads[2].item()])
    assert found[0] == pytest.approx(found[1], rel=1e-7, abs=1e-9)


def test_gradient_methods_agree_and_match_finite_differences():
    """Van der Pol from (2, 0) until x = 0 with the slower of two guards: aca and direct agree to
    round-off, and central differences of the whole computation (search and all) agree with them."""

    class VanDerPol(nn.Module):
        def __init__(self):
            super().__init__()
            self.mu = nn.Parameter(torch.tensor(1.3, dtype=F64))

        def forward(self, t, y):
            return torch.stack([y[1], self.mu * (1 - y[0] ** 2) * y[1] - y[0]])

    settings = {"rtol": 1e-12, "atol": 1e-12}

    def event_time(mu, x0, gradient="direct"):
        func = VanDerPol()
        with torch.no_grad():
            func.mu.copy_(mu)
        y0 = torch.tensor([x0, 0.0], dtype=F64, requires_grad=True)
        event_t, _ = odeint_event(func, y0, 0.0, event_fn=lambda t, y: torch.stack([y[0], y[1] + 5.0]),
                                  gradient=gradient, **settings)
        return event_t, func.mu, y0

    grads = {}
    for gradient in ("aca", "direct"):
        event_t, mu, y0 = event_time(1.3, 2.0, gradient)
        grads[gradient] = torch.autograd.grad(event_t, (mu, y0))
    assert grads["aca"][0].item() == pytest.approx(grads["direct"][0].item(), rel=1e-12)
    assert grads["aca"][1].tolist() == pytest.approx(grads["direct"][1].tolist(), rel=1e-12)
    delta = 1e-5
    with torch.no_grad():
        d_mu = (event_time(1.3 + delta, 2.0)[0] - event_time(1.3 - delta, 2.0)[0]).item() / (2 * delta)
        d_x0 = (event_time(1.3, 2.0 + delta)[0] - event_time(1.3, 2.0 - delta)[0]).item() / (2 * delta)
    assert grads["aca"][0].item() == pytest.approx(d_mu, rel=1e-6)
    assert grads["aca"][1][0].item() == pytest.approx(d_x0, rel=1e-6)


def test_several_events_directions_and_which_fired():
    """x = cos t: x - 0.9 falling is recorded at acos 0.9, v = -sin t (0 at the start: not an event
    there) at pi, and x + 0.5 rising (not falling, at 2 pi / 3) stops the integration at 4 pi / 3."""
    events = [Event(lambda t, s: s[0] + 0.5, direction=1, terminal=True),
              Event(lambda t, s: s[0] - 0.9, direction=-1),
              Event(lambda t, s: s[1])]
    y0 = (torch.tensor(1.0, dtype=F64), torch.tensor(0.0, dtype=F64))
    t = torch.linspace(0.0, 10.0, 21, dtype=F64)
    sol = solve_hybrid(Oscillator(1.0), y0, t, events, **TIGHT)
    assert sol.event_ids == [1, 2, 0]
    assert sol.event_ts.tolist() == pytest.approx([math.acos(0.9), math.pi, 4 * math.pi / 3], abs=1e-10)
    assert sol.event_ys[0].tolist() == pytest.approx([0.9, -1.0, -0.5], abs=1e-9)
    assert sol.ts.tolist() == t[t < 4 * math.pi / 3].tolist()
    assert sol.ys[0].tolist() == pytest.approx(torch.cos(sol.ts).tolist(), abs=1e-9)


@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_recorded_events_and_their_gradients(gradient):
    """x = cos(omega t) crosses 0 at t_k = (pi/2 + k pi) / omega, dt_k/domega = -t_k / omega; the
    integration goes on to the end time, and the outputs are the solution's."""
    omega = 1.1
    func = Oscillator(omega)
    t = torch.linspace(0.0, 9.0, 31, dtype=F64)
    y0 = (torch.tensor(1.0, dtype=F64), torch.tensor(0.0, dtype=F64))
    sol = solve_hybrid(func, y0, t, [Event(lambda t, s: s[0])], gradient=gradient, **TIGHT)
    exact = [(math.pi / 2 + k * math.pi) / omega for k in range(3)]
    assert sol.event_ids == [0, 0, 0] and sol.event_ts.tolist() == pytest.approx(exact, abs=1e-10)
    assert sol.ys[0].tolist() == pytest.approx(torch.cos(omega * t).tolist(), abs=1e-9)
    grads = [torch.autograd.grad(tk, func.omega, retain_graph=True)[0].item() for tk in sol.event_ts]
    assert grads == pytest.approx([-tk / omega for tk in exact], rel=1e-8)


def bounce_times(e, count, height=1.0):
    """Closed form: t_1 = sqrt(2 h / g), t_{k+1} = t_k + 2 e^k sqrt(2 g h) / g."""
    v, times = math.sqrt(2 * G * height), [math.sqrt(2 * height / G)]
    for k in range(1, count):
        times.append(times[-1] + 2 * e ** k * v / G)
    return times


def bouncing_ball(e, t, gradient, **kwargs):
    def fall(t, y):
        return torch.stack([y[1], torch.full_like(y[1], -G)])

    ground = Event(lambda t, y: y[0], direction=-1, reset=lambda t, y: torch.stack([y[0], -e * y[1]]))
    return solve_hybrid(fall, torch.tensor([1.0, 0.0], dtype=t.dtype), t, [ground], gradient=gradient, **kwargs)


@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_bouncing_ball_chain_through_resets(gradient):
    """Bounce times and their derivatives in e, dt_k/de = sum_{j<k} 2 j e^(j-1) sqrt(2 g h) / g,
    through the chain of reset maps; max_events stops at the second bounce."""
    e = scalar(0.8)
    t = torch.linspace(0.0, 2.5, 51, dtype=F64)
    sol = bouncing_ball(e, t, gradient)
    exact = bounce_times(0.8, 4)
    assert sol.event_ids == [0] * 4 and sol.event_ts.tolist() == pytest.approx(exact, abs=1e-12)
    assert sol.ts.shape == (51,) and (sol.ys[:, 0] >= -1e-12).all()
    v = math.sqrt(2 * G)
    for k, tk in enumerate(sol.event_ts):
        d_e = torch.autograd.grad(tk, e, retain_graph=True)[0].item()
        assert d_e == pytest.approx(sum(2 * j * 0.8 ** (j - 1) * v / G for j in range(1, k + 1)), abs=1e-11)
    stopped = bouncing_ball(e, t, gradient, max_events=2)
    assert stopped.event_ts.tolist() == pytest.approx(exact[:2], abs=1e-12)
    assert stopped.ts.tolist() == t[t < exact[1]].tolist()


def test_float32_state():
    """In float32 the searched step times are the replayed ones to the last bit, so the replay ends
    where the search did; the bounce times and their derivative in e to float32 precision."""
    e = torch.tensor(0.8, requires_grad=True)
    sol = bouncing_ball(e, torch.linspace(0.0, 2.5, 20), "aca", rtol=1e-5, atol=1e-6)
    assert sol.event_ts.dtype == torch.float32
    assert sol.event_ts.tolist() == pytest.approx(bounce_times(0.8, 4), abs=1e-5)
    v = math.sqrt(2 * G)
    exact = sum(2 * j * 0.8 ** (j - 1) * v / G for j in range(1, 4))
    assert torch.autograd.grad(sol.event_ts[-1], e)[0].item() == pytest.approx(exact, rel=1e-5)


def test_bouncing_ball_example_recovers_restitution():
    """examples/bouncing_ball.py fits e from 0.5 on noise-free heights to within 1e-3."""
    path = Path(__file__).resolve().parent.parent / "examples" / "bouncing_ball.py"
    spec = importlib.util.spec_from_file_location("bouncing_ball", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    t = torch.linspace(0.0, 2.5, 60, dtype=F64)
    observed = torch.tensor(example.heights(t.numpy(), example.E_TRUE))
    assert observed.numpy() == pytest.approx(bouncing_ball(0.8, t, "aca").ys[:, 0].detach().numpy(), abs=1e-12)
    assert abs(example.fit(t, observed, e=0.5) - example.E_TRUE) < 1e-3


def test_errors_name_the_argument():
    y0, t0 = torch.tensor(1.0, dtype=F64), torch.tensor(0.0, dtype=F64)
    decay = Decay(1.0)
    with pytest.raises(TypeError, match="event_fn must be callable"):
        odeint_event(decay, y0, t0, event_fn=3.0)
    with pytest.raises(ValueError, match="event_fn returned a non-finite value nan at t="):
        odeint_event(decay, y0, t0, event_fn=lambda t, y: torch.log(y - 0.5))
    with pytest.raises(ValueError, match=r"event_fn must return 1 value as at t0, got shape \(2,\)"):
        odeint_event(decay, y0, t0, event_fn=lambda t, y: (y - 0.5).repeat(1 + int(t > 0)))
    with pytest.raises(TypeError, match="event_fn must return a tensor"):
        odeint_event(decay, y0, t0, event_fn=lambda t, y: 1.0)
    with pytest.raises(ValueError, match="Event direction must be one of"):
        Event(lambda t, y: y, direction=2)
    with pytest.raises(ValueError, match="terminal .* or has a reset map"):
        Event(lambda t, y: y, terminal=True, reset=lambda t, y: y)
    for gradient in ("adjoint", "mali"):
        with pytest.raises(ValueError, match=f"gradient='{gradient}' cannot differentiate event times; use one of"):
            odeint_event(decay, y0, t0, event_fn=lambda t, y: y - 0.5, gradient=gradient, method="alf")
    with pytest.raises(ValueError, match="method 'alf' has no dense output"):
        odeint_event(decay, y0, t0, event_fn=lambda t, y: y - 0.5, method="alf")
    with pytest.raises(SolverError, match="max_steps exceeded before an event"):
        odeint_event(decay, y0, t0, event_fn=lambda t, y: y + 1.0, options={"max_steps": 50})
    with pytest.raises(ValueError, match="nor a fixed-step method without options\\['step_size'\\]"):
        odeint_event(decay, y0, t0, event_fn=lambda t, y: y - 0.5, method="rk4")
    with pytest.raises(ValueError, match="t must be \\[t0, t1\\]"):
        odeint_until_event(decay, y0, torch.tensor([0.0, 1.0, 2.0]), event_fn=lambda t, y: y - 0.5)
    bad_reset = Event(lambda t, y: y - 0.5, reset=lambda t, y: torch.stack([y, y]))
    with pytest.raises(ValueError, match=r"events\[0\].reset returned shape \(2,\)"):
        solve_hybrid(decay, y0, torch.tensor([0.0, 2.0]), [bad_reset])
    with pytest.raises(TypeError, match="events must be a non-empty sequence of Event"):
        solve_hybrid(decay, y0, torch.tensor([0.0, 2.0]), [lambda t, y: y])
