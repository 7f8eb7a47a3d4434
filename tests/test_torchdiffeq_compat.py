"""physode.torchdiffeq: torchdiffeq's signatures and defaults on physode's engine, checked against
torchdiffeq itself where the two compute the same thing."""

import inspect

import pytest
import torch
import torchdiffeq as reference

import physode
import physode.torchdiffeq as torchdiffeq

F64 = torch.float64


class Oscillator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.omega = torch.nn.Parameter(torch.tensor(1.3, dtype=F64))

    def forward(self, t, y):
        return torch.stack([y[..., 1], -self.omega**2 * y[..., 0]], dim=-1)


Y0 = torch.tensor([1.0, 0.0], dtype=F64)
T = torch.linspace(0, 2, 5, dtype=F64)


def test_signatures_and_defaults_are_torchdiffeqs():
    for name in ("odeint", "odeint_adjoint", "odeint_event"):
        ours, theirs = (inspect.signature(getattr(module, name)).parameters for module in (torchdiffeq, reference))
        for key, parameter in theirs.items():
            if key != "odeint_interface":
                assert key in ours and ours[key].default == parameter.default and ours[key].kind == parameter.kind


def test_odeint_is_physode_direct_at_torchdiffeqs_tolerances():
    func = Oscillator()
    ours = torchdiffeq.odeint(func, Y0, T)
    same = physode.odeint(func, Y0, T, rtol=1e-7, atol=1e-9, gradient="direct")
    assert torch.equal(ours, same)
    theirs = reference.odeint(func, Y0, T)
    assert (ours - theirs).abs().max() < 1e-7


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4", "heun3"])
def test_fixed_grid_methods_match_torchdiffeq_step_for_step(method):
    """On the output times (torchdiffeq's default grid) and with a step size that divides the span;
    torchdiffeq's rk4 is Kutta's 3/8 rule, physode's rk38."""
    func = Oscillator()
    for options in (None, {"step_size": 0.125}):
        ours = torchdiffeq.odeint(func, Y0, T, method=method, options=options)
        theirs = reference.odeint(func, Y0, T, method=method, options=options)
        assert (ours - theirs).abs().max() < 1e-14


def test_odeint_adjoint_is_aca_unless_the_continuous_adjoint_is_asked_for():
    func = Oscillator()
    exact = torch.autograd.grad(physode.odeint(func, Y0, T, rtol=1e-7, atol=1e-9, gradient="direct").sum(), func.omega)[0]
    aca = torch.autograd.grad(torchdiffeq.odeint_adjoint(func, Y0, T).sum(), func.omega)[0]
    assert aca.item() == pytest.approx(exact.item(), rel=1e-12)
    continuous = torchdiffeq.odeint_adjoint(func, Y0, T, gradient="adjoint", adjoint_rtol=1e-9, adjoint_atol=1e-11)
    assert torch.autograd.grad(continuous.sum(), func.omega)[0].item() == pytest.approx(exact.item(), rel=1e-5)
    with pytest.warns(UserWarning, match="adjoint_rtol ignored: the Adaptive Checkpoint Adjoint"):
        torchdiffeq.odeint_adjoint(func, Y0, T, adjoint_rtol=1e-9)
    plain = lambda t, y: -y  # noqa: E731
    y0 = Y0.clone().requires_grad_(True)
    k = torch.tensor(0.5, dtype=F64, requires_grad=True)
    ys = torchdiffeq.odeint_adjoint(lambda t, y: -k * y, y0, T, adjoint_params=(k,))
    grad_k = torch.autograd.grad(ys[-1].sum(), k)[0]
    assert grad_k.item() == pytest.approx((-2.0 * torch.exp(-1.0 * torch.tensor(1.0, dtype=F64)) * 1.0).item(), rel=1e-6)
    assert torch.allclose(torchdiffeq.odeint(plain, Y0, T), Y0 * torch.exp(-T).unsqueeze(-1), rtol=1e-6)


def test_a_tuple_state_is_measured_in_torchdiffeqs_mixed_norm():
    func = lambda t, y: (-y[0], -10 * y[1])  # noqa: E731
    y0 = (torch.ones(3, dtype=F64), torch.ones(1, dtype=F64))
    mixed = lambda e: torch.stack([x.square().mean().sqrt() for x in e]).max()  # noqa: E731
    ours = physode.solve(func, y0, T, rtol=1e-7, atol=1e-9, gradient="direct", options={"norm": mixed})
    compat = torchdiffeq.odeint(func, y0, T)
    assert all(torch.equal(a, b) for a, b in zip(ours.ys, compat))
