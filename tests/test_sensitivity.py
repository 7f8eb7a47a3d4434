"""Forward sensitivities (physode.jvp, physode.jacobian) against reverse mode through the same
steps, finite differences and closed forms."""

import math

import pytest
import torch

import physode
from physode.solve import FIXED_STEP_METHODS, METHODS, TABLEAUS

from problems import F64, Linear, Neural

T = torch.linspace(0.0, 2.0, 7, dtype=F64)


def _options(method):
    return {"step_size": 0.05} if method in FIXED_STEP_METHODS else None


@pytest.mark.parametrize("method", METHODS)
def test_jacobian_equals_reverse_mode_through_the_same_steps(method):
    """Contracted with a random cotangent, the forward Jacobian equals gradient='direct' to round-off."""
    func = Neural()
    y0 = torch.randn(2, 3, dtype=F64)
    tol = 1e-5 if method in ("heun_euler", "adaptive_heun", "fehlberg2", "alf") else 1e-8
    jac = physode.jacobian(func, y0, T, method=method, rtol=tol, atol=tol, options=_options(method))
    leaf = y0.clone().requires_grad_(True)
    ys = physode.odeint(func, leaf, T, method=method, rtol=tol, atol=tol, options=_options(method), gradient="direct")
    cotangent = torch.randn_like(ys)
    params = dict(func.named_parameters())
    grads = torch.autograd.grad((ys * cotangent).sum(), [leaf, *params.values()])
    assert torch.equal(jac.ys, ys.detach())
    contract = lambda d, extra: (cotangent.reshape(*cotangent.shape, *[1] * extra) * d).sum(dim=(0, 1, 2))  # noqa: E731
    assert (contract(jac.y0, 2) - grads[0]).abs().max() < 1e-12
    for (name, p), g in zip(params.items(), grads[1:]):
        assert (contract(jac.params[name], p.ndim) - g).abs().max() < 1e-11 * (1 + g.abs().max())


@pytest.mark.parametrize("method", sorted(TABLEAUS))
def test_jacobian_matches_finite_differences_of_the_same_steps(method):
    """With fixed steps, central differences differentiate the same discrete map: they agree to O(eps^2)."""
    func = Neural()
    y0 = torch.randn(3, dtype=F64)
    options = {"step_size": 0.1}
    jac = physode.jacobian(func, y0, T, method=method, options=options)
    weight = func.net[0].weight
    eps = 1e-6
    for i, j in [(0, 0), (5, 2)]:
        results = []
        for sign in (1, -1):
            with torch.no_grad():
                weight[i, j] += sign * eps
                results.append(physode.odeint(func, y0, T, method=method, options=options))
                weight[i, j] -= sign * eps
        difference = (results[0] - results[1]) / (2 * eps)
        assert (jac.params["net.0.weight"][..., i, j] - difference).abs().max() < 1e-8
    for k in range(3):
        step = torch.zeros(3, dtype=F64)
        step[k] = eps
        difference = (physode.odeint(func, y0 + step, T, method=method, options=options)
                      - physode.odeint(func, y0 - step, T, method=method, options=options)) / (2 * eps)
        assert (jac.y0[..., k] - difference).abs().max() < 1e-8


def test_exponential_closed_form():
    """z' = a z: dz/dz0 = exp(a t), dz/da = t z0 exp(a t)."""
    func = Linear(a=-0.7)
    z0 = torch.tensor([1.5, -0.5], dtype=F64)
    jac = physode.jacobian(func, z0, T, rtol=1e-12, atol=1e-12)
    growth = torch.exp(-0.7 * T)
    assert (jac.y0 - torch.diag_embed(growth[:, None].expand(-1, 2))).abs().max() < 1e-10
    assert (jac.params["a"] - T[:, None] * z0 * growth[:, None]).abs().max() < 1e-10


def test_tuple_state_blocks_against_the_oscillator_closed_form():
    """x'' = -w^2 x as a tuple (x, v): d(x, v)(t) / d(x0, v0) is the rotation [[c, s/w], [-w s, c]]."""

    class Oscillator(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.omega = torch.nn.Parameter(torch.tensor(2.0, dtype=F64))

        def forward(self, t, state):
            x, v = state
            return v, -self.omega**2 * x

    x0, v0 = torch.tensor([1.0], dtype=F64), torch.tensor([0.5], dtype=F64)
    jac = physode.jacobian(Oscillator(), (x0, v0), T, rtol=1e-12, atol=1e-12)
    c, s = torch.cos(2 * T), torch.sin(2 * T)
    expected = [[c, s / 2], [-2 * s, c]]
    for i in range(2):
        for j in range(2):
            assert jac.y0[i][j].shape == (len(T), 1, 1)
            assert (jac.y0[i][j][:, 0, 0] - expected[i][j]).abs().max() < 1e-10
    # x = x0 cos(w t) + v0 / w sin(w t): dx/dw = -x0 t sin - v0 / w^2 sin + v0 t / w cos
    dx = -x0 * T * s - v0 / 4 * s + v0 * T / 2 * c
    assert (jac.params["omega"][0][:, 0] - dx).abs().max() < 1e-10


def test_jvp_along_chosen_directions_is_the_jacobian_contracted():
    func = Neural()
    y0 = torch.randn(2, 3, dtype=F64)
    jac = physode.jacobian(func, y0, T)
    directions = torch.randn(4, 2, 3, dtype=F64)
    weight = torch.randn(4, *func.net[2].weight.shape, dtype=F64)
    sens = physode.jvp(func, y0, T, directions, {"net.2.weight": weight})
    expected = torch.einsum("tabij,pij->ptab", jac.y0, directions) + torch.einsum(
        "tabij,pij->ptab", jac.params["net.2.weight"], weight)
    assert sens.tangents.shape == (4, len(T), 2, 3)
    assert (sens.tangents - expected).abs().max() < 1e-12
    assert sens.stats.nfe > 0 and sens.stats.accepted > 0


def test_a_bound_method_of_a_module_differentiates_its_parameters():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rate = torch.nn.Parameter(torch.tensor(0.3, dtype=F64))

        def field(self, t, y):
            return -self.rate * y

    model = Model()
    jac = physode.jacobian(model.field, torch.tensor([2.0], dtype=F64), T, rtol=1e-12, atol=1e-12)
    assert (jac.params["rate"][:, 0] - (-T * 2.0 * torch.exp(-0.3 * T))).abs().max() < 1e-10


def test_a_solver_error_is_raised_as_in_solve():
    with pytest.raises(physode.SolverError, match="max_steps"):
        physode.jacobian(Neural(), torch.ones(3, dtype=F64), T, options={"max_steps": 2})


@pytest.mark.parametrize("call, error, message", [
    (lambda f, y: physode.jvp(f, y, T), ValueError, "jvp needs directions"),
    (lambda f, y: physode.jvp(f, y, T, torch.ones(2, 4, dtype=F64)), ValueError, r"y0_tangents must have shape \(P, \*\(3,\)\)"),
    (lambda f, y: physode.jvp(f, y, T, None, {"nope": torch.ones(1)}), ValueError, "not a parameter of func"),
    (lambda f, y: physode.jvp(f, y, T, torch.ones(2, 3, dtype=F64), {"net.0.bias": torch.ones(3, 16, dtype=F64)}),
     ValueError, "same positive number of directions"),
    (lambda f, y: physode.jvp(lambda t, z: -z, y, T, None, {"a": torch.ones(1, 1)}), TypeError, "nn.Module"),
    (lambda f, y: physode.jacobian(f, y, T, wrt=["y0", "missing"]), ValueError, "neither 'y0' nor a parameter"),
])
def test_bad_directions_are_refused_at_the_call(call, error, message):
    with pytest.raises(error, match=message):
        call(Neural(), torch.ones(3, dtype=F64))


def test_the_sweep_retakes_each_accepted_step_once():
    """The sweep retakes each accepted step once, whatever the number of directions."""
    func = Neural()
    y0 = torch.randn(3, dtype=F64)
    solution = physode.solve(func, y0, T)
    jac = physode.jacobian(func, y0, T)
    per_step = 7  # dopri5: the sweep retakes the 7 stages of every step with outputs inside it
    assert jac.stats.accepted == solution.stats.accepted
    assert jac.stats.nfe <= solution.stats.nfe + per_step * solution.stats.accepted
    assert not math.isnan(float(jac.ys.sum()))
