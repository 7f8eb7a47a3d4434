"""gradient=Adjoint(...): torchdiffeq's adjoint_rtol/atol/method/options, the seminorm, callbacks."""

import pytest
import torch

import physode
from physode.grad import Adjoint

F64 = torch.float64


class Field(torch.nn.Module):
    """A small neural vector field that counts the callbacks of each pass."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)).double()
        self.counts = {}

    def forward(self, t, y):
        return self.net(y)

    def _count(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1

    def callback_step(self, t0, y0, dt):
        self._count("step")

    def callback_step_adjoint(self, t0, y0, dt):
        self._count("step_adjoint")


Y0 = torch.randn(8, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
T = torch.linspace(0, 2, 3, dtype=F64)


def _gradient(field, gradient, **kwargs):
    sol = physode.solve(field, Y0, T, gradient=gradient, **kwargs)
    grads = torch.autograd.grad(sol.ys.square().sum(), list(field.parameters()))
    return torch.cat([g.flatten() for g in grads]), sol.stats


def test_the_seminorm_saves_backward_evaluations_at_the_same_accuracy():
    field = Field()
    exact, _ = _gradient(field, "direct", rtol=1e-10, atol=1e-10)
    full, full_stats = _gradient(field, Adjoint())
    semi, semi_stats = _gradient(field, Adjoint(seminorm=True))
    assert semi_stats.nfe_backward < 0.8 * full_stats.nfe_backward
    errors = [((grad - exact).norm() / exact.norm()).item() for grad in (full, semi)]
    assert max(errors) < 1e-5
    _, tight_stats = _gradient(field, Adjoint(rtol=1e-10, atol=1e-10))
    assert tight_stats.nfe_backward > 2 * full_stats.nfe_backward and tight_stats.nfe == full_stats.nfe


def test_adjoint_options_reach_the_backward_solve_and_callbacks_both_passes():
    field = Field()
    _gradient(field, Adjoint())
    assert field.counts["step"] > 0 and field.counts["step_adjoint"] > 0
    with pytest.raises(physode.SolverError, match="backward pass of gradient=.adjoint.: max_num_steps exceeded"):
        _gradient(field, Adjoint(options={"max_num_steps": 2}))
    with pytest.raises(ValueError, match="seminorm=True sets the backward norm"):
        Adjoint(seminorm=True, options={"norm": lambda x: x.abs().max()})
    with pytest.raises(TypeError, match="Adjoint options must be a dict"):
        Adjoint(options=[("max_num_steps", 2)])
