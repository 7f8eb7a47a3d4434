"""torchdiffeq's step options: stepping on the output times or a constructed grid, step_t, jump_t,
perturb, min_step, the error norm, the option names and the step callbacks."""

import math
from contextlib import nullcontext

import pytest
import torch

import physode

F64 = torch.float64
Y0 = torch.tensor([1.0, 0.5], dtype=F64)


def decay(t, y):
    return -y


def sign_switch(t, y):
    """dy/dt = +1 before t = 0.5 and -1 from it on: y(1) = y(0) exactly."""
    return torch.where(t < 0.5, torch.ones_like(y), -torch.ones_like(y))


class StepLog(torch.nn.Module):
    """dy/dt = -y, recording every callback as (name, t0, dt)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, t, y):
        return -y if isinstance(y, torch.Tensor) else tuple(-x for x in y)

    def callback_step(self, t0, y0, dt):
        self.calls.append(("step", float(t0), float(dt), y0))

    def callback_accept_step(self, t0, y0, dt):
        self.calls.append(("accept", float(t0), float(dt), y0))

    def callback_reject_step(self, t0, y0, dt):
        self.calls.append(("reject", float(t0), float(dt), y0))


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_fixed_step_methods_step_on_the_output_times(method):
    t = torch.linspace(0, 1, 11, dtype=F64)
    on_outputs = physode.odeint(decay, Y0, t, method=method)
    with_step = physode.odeint(decay, Y0, t, method=method, options={"step_size": 0.1})
    assert torch.allclose(on_outputs, with_step, rtol=0, atol=1e-15)
    uneven = torch.tensor([0.0, 0.1, 0.4, 1.0], dtype=F64)
    by_hand = [Y0]
    for t0, t1 in zip(uneven[:-1], uneven[1:]):
        by_hand.append(physode.odeint(decay, by_hand[-1], torch.stack([t0, t1]), method=method)[-1])
    assert torch.allclose(physode.odeint(decay, Y0, uneven, method=method), torch.stack(by_hand), rtol=0, atol=1e-15)


def test_grid_constructor_steps_on_its_grid_and_interpolates_the_outputs():
    t = torch.linspace(0, 1, 6, dtype=F64)
    grid = torch.linspace(0, 1, 21, dtype=F64)
    ys = physode.odeint(decay, Y0, t, method="rk4", options={"grid_constructor": lambda func, y0, t: grid})
    with_step = physode.odeint(decay, Y0, t, method="rk4", options={"step_size": 0.05})
    assert torch.allclose(ys, with_step, rtol=0, atol=1e-15)
    exact = Y0 * torch.exp(-t).unsqueeze(-1)
    assert (ys - exact).abs().max() < 1e-7
    with pytest.raises(ValueError, match=r"grid_constructor'\] must return times from t\[0\] = 0.0"):
        physode.odeint(decay, Y0, t, method="rk4", options={"grid_constructor": lambda func, y0, t: grid[1:]})
    with pytest.raises(ValueError, match="grid_constructor'\\] is for fixed-step methods"):
        physode.odeint(decay, Y0, t, options={"grid_constructor": lambda func, y0, t: grid})


def test_perturb_samples_a_field_that_jumps_at_the_grid_points_on_each_side():
    def after_half(t, y):  # +1 up to and including t = 0.5, -1 after
        return torch.where(t <= 0.5, torch.ones_like(y), -torch.ones_like(y))

    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    plain = physode.odeint(after_half, Y0, t, method="euler")
    perturbed = physode.odeint(after_half, Y0, t, method="euler", options={"perturb": True})
    assert torch.allclose(plain[-1], Y0 + 1.0, rtol=0, atol=1e-15)
    assert torch.allclose(perturbed[-1], Y0, rtol=0, atol=1e-15)
    assert torch.equal(physode.odeint(after_half, Y0, t, method="euler", options={"perturb": False}), plain)


@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_jump_t_integrates_a_discontinuous_field_exactly_and_cheaply(gradient):
    t = torch.tensor([0.0, 0.25, 1.0], dtype=F64)
    y0 = Y0.clone().requires_grad_(True)
    jumped = physode.solve(sign_switch, y0, t, rtol=1e-8, atol=1e-10, gradient=gradient, options={"jump_t": [0.5]})
    plain = physode.solve(sign_switch, Y0, t, rtol=1e-8, atol=1e-10, gradient=gradient)
    exact = torch.stack([Y0, Y0 + 0.25, Y0])
    assert (jumped.ys - exact).abs().max() < 1e-13
    assert jumped.stats.rejected == 0 and jumped.stats.nfe < plain.stats.nfe / 3
    (grad,) = torch.autograd.grad(jumped.ys.sum(), y0)
    assert torch.allclose(grad, torch.full_like(Y0, 3.0), rtol=0, atol=1e-12)


def test_jump_t_on_a_piecewise_linear_system_against_its_closed_form():
    """dy/dt = a(t) y with a = 1 before t = 0.3 and -2 after: y(t) = y0 e^0.3 e^(-2 (t - 0.3)), and
    the gradient with respect to the output time is the right-hand derivative there."""
    rate = lambda t, y: torch.where(t < 0.3, 1.0, -2.0) * y  # noqa: E731
    t = torch.tensor([0.0, 0.7, 1.0], dtype=F64, requires_grad=True)
    ys = physode.odeint(rate, Y0, t, rtol=1e-10, atol=1e-12, options={"jump_t": torch.tensor([0.3])})
    exact = Y0 * math.exp(0.3) * torch.exp(-2 * (t.detach() - 0.3)).unsqueeze(-1)
    assert (ys[1:] - exact[1:]).abs().max() < 1e-8
    (grad,) = torch.autograd.grad(ys[1].sum(), t)
    assert grad[1].item() == pytest.approx(-2 * exact[1].sum().item(), rel=1e-8)


def test_step_t_makes_steps_end_on_those_times_and_keeps_the_gradients_equal():
    func = StepLog()
    stops = [0.123, 0.777]
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    y0 = Y0.clone().requires_grad_(True)
    ys = physode.odeint(func, y0, t, rtol=1e-6, atol=1e-8, options={"step_t": stops})
    ends = [t0 + dt for name, t0, dt, _ in func.calls if name == "accept"]
    assert all(min(abs(end - stop) for end in ends) < 1e-15 for stop in stops)
    exact = Y0 * torch.exp(-t).unsqueeze(-1)
    assert (ys - exact).abs().max() < 1e-6
    aca = torch.autograd.grad(ys.square().sum(), y0)[0]
    direct = torch.autograd.grad(
        physode.odeint(func, y0, t, gradient="direct", options={"step_t": stops}).square().sum(), y0
    )[0]
    assert torch.allclose(aca, direct, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match=r"must not share times, both have \[0.123\]"):
        physode.odeint(decay, Y0, t, options={"step_t": stops, "jump_t": [0.123]})


def test_callbacks_see_every_attempted_step_and_its_verdict():
    func = StepLog()
    t = torch.tensor([0.0, 2.0], dtype=F64)
    sol = physode.solve(func, Y0, t, rtol=1e-9, atol=1e-12, options={"first_step": 1.0})
    names = [call[0] for call in func.calls]
    assert names.count("step") == sol.stats.accepted + sol.stats.rejected
    assert names.count("accept") == sol.stats.accepted and names.count("reject") == sol.stats.rejected > 0
    assert names[0] == "step" and names[1] == "reject" and func.calls[0][2] == 1.0
    tuple_func = StepLog()
    physode.odeint(tuple_func, (Y0, Y0[:1]), t)
    assert isinstance(tuple_func.calls[0][3], tuple) and tuple_func.calls[0][3][1].shape == (1,)


def test_min_step_bounds_the_steps_and_accepts_them():
    func = StepLog()
    t = torch.tensor([0.0, 1.0], dtype=F64)
    sol = physode.solve(func, Y0, t, rtol=1e-12, atol=1e-12, options={"min_step": 0.25})
    steps = [dt for name, _, dt, _ in func.calls if name == "accept"]
    assert sol.stats.rejected == 0 and sol.stats.accepted == 4
    assert all(dt == pytest.approx(0.25) for dt in steps)


def test_torchdiffeq_names_of_the_step_options():
    t = torch.linspace(0, 3, 4, dtype=F64)
    ours = physode.solve(decay, Y0, t, options={"max_factor": 3.0, "min_factor": 0.5})
    theirs = physode.solve(decay, Y0, t, options={"ifactor": 3.0, "dfactor": 0.5})
    assert torch.equal(ours.ys, theirs.ys) and ours.stats == theirs.stats
    with pytest.raises(physode.SolverError, match="max_steps exceeded"):
        physode.odeint(decay, Y0, t, rtol=1e-12, atol=1e-12, options={"max_num_steps": 3})
    with pytest.raises(ValueError, match=r"'ifactor'\] is torchdiffeq's name for options\['max_factor'\]"):
        physode.odeint(decay, Y0, t, options={"ifactor": 3.0, "max_factor": 3.0})


def test_a_norm_of_the_users_state_shapes_the_steps():
    t = torch.tensor([0.0, 5.0], dtype=F64)
    y0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64)  # max norm = 2 x RMS norm
    rms = physode.solve(decay, y0, t)
    seen = []

    def max_norm(error):
        seen.append(error)
        return error.abs().max()

    by_max = physode.solve(decay, y0, t, options={"norm": max_norm})
    assert by_max.stats.accepted > rms.stats.accepted  # the larger norm takes smaller steps
    assert seen[0].shape == y0.shape
    pieces = []
    physode.odeint(StepLog(), (Y0, Y0[:1]), t, options={"norm": lambda e: pieces.append(e) or e[0].abs().max()})
    assert isinstance(pieces[0], tuple) and pieces[0][1].shape == (1,)
    with pytest.raises(TypeError, match=r"options\['norm'\] must be a function, got str"):
        physode.odeint(decay, Y0, t, options={"norm": "rms"})


def test_fixed_steps_call_only_callback_step_and_warn_of_the_others():
    func = StepLog()
    t = torch.linspace(0, 1, 5, dtype=F64)
    with pytest.warns(UserWarning, match=r"callback_accept_step, callback_reject_step will not be called: method 'rk4'"):
        physode.odeint(func, Y0, t, method="rk4")
    assert [call[0] for call in func.calls] == ["step"] * 4
    with pytest.warns(UserWarning, match=r"callback_step, .* will not be called: method 'scipy_solver'"):
        physode.odeint(StepLog(), Y0, t, method="scipy_solver")


@pytest.mark.parametrize("method, options", [("rk4", {"step_size": 0.1}), ("dopri5", None)])
def test_a_backward_sweep_calls_the_adjoint_callbacks_once_per_retraced_step(method, options):
    class Retraced(StepLog):
        def callback_step_adjoint(self, t0, y0, dt):
            self.calls.append(("step_adjoint", float(t0), float(dt), y0))

        def callback_accept_step_adjoint(self, t0, y0, dt):
            self.calls.append(("accept_adjoint", float(t0), float(dt), y0))

    func = Retraced()
    y0 = Y0.clone().requires_grad_(True)
    with pytest.warns(UserWarning) if method == "rk4" else nullcontext():
        sol = physode.solve(func, y0, torch.tensor([0.0, 1.0], dtype=F64), method=method, options=options)
    sol.ys.sum().backward()
    retraced = [call for call in func.calls if call[0] == "step_adjoint"]
    assert len(retraced) == sol.stats.accepted == [c[0] for c in func.calls].count("accept_adjoint")
    assert retraced[0][1] + retraced[0][2] == pytest.approx(1.0)  # the last step first


def test_perturb_never_evaluates_func_on_a_grid_point():
    seen = []

    def field(t, y):
        seen.append(t.item())
        return -y

    y0 = Y0.clone().requires_grad_(True)
    ys = physode.odeint(field, y0, torch.tensor([0.0, 1.0], dtype=F64), method="rk4",
                        options={"step_size": 0.5, "perturb": True}, params=())
    ys.sum().backward()
    assert not {0.0, 0.5, 1.0} & set(seen) and min(seen) > 0.0 and max(seen) < 1.0
