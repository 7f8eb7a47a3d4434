"""ACA under a memory budget: binomial and uniform checkpoint schedules, and ANODE's fixed grid."""

from math import comb

import pytest
import torch

import physode
from physode.grad.schedules import Binomial, Uniform
from problems import F64, Neural, saved_numbers


def _grads(func, y0, t, method="dopri5", **options):
    tol = 1e-4 if method == "alf" else 1e-7  # second order: keep the number of steps moderate
    ys = physode.odeint(func, y0, t, method=method, rtol=tol, atol=tol, options=options)
    weights = torch.linspace(0.5, 1.5, ys.numel(), dtype=F64).reshape(ys.shape)
    return torch.autograd.grad((weights * ys**2).sum(), [y0, t, *func.parameters()])


@pytest.mark.parametrize("schedule", ["binomial", "uniform"])
@pytest.mark.parametrize("budget", [1, 2, 5, 1000])
@pytest.mark.parametrize("method, land", [("dopri5", False), ("tsit5", True), ("rk4", False), ("alf", True)])
def test_budget_gives_the_same_gradient(schedule, budget, method, land):
    func = Neural()
    y0 = torch.randn(3, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.4, 1.3, 2.5], dtype=F64, requires_grad=True)
    extra = {"step_size": 0.1} if method == "rk4" else {}
    full = _grads(func, y0, t, method, land_on_outputs=land, **extra)
    budgeted = _grads(func, y0, t, method, land_on_outputs=land, checkpoints=budget, checkpoint_schedule=schedule, **extra)
    for a, b in zip(full, budgeted):
        assert (a - b).abs().max() <= 1e-12 * (1 + a.abs().max())


class _CountingReplay:
    """States are step indices; counts forward advances and the most states alive at once."""

    def __init__(self):
        self.advances = 0

    def advance(self, i, state):
        assert state[0] == i
        self.advances += 1
        return (i + 1, None)


@pytest.mark.parametrize("n, budget", [(10, 2), (57, 3), (200, 5), (1000, 8), (80, 70), (5, 20)])
def test_binomial_schedule_is_griewanks(n, budget):
    """Reverses every step once, in order, with Griewank's minimal number of recomputed steps."""
    policy = Binomial(budget)
    for i in range(n + 1):
        policy.keep(i, i, None)
        assert len(policy.kept) <= budget + 1
    replay = _CountingReplay()
    order = [i for i, (index, _) in policy.reversed_states(n, replay) if i == index]
    assert order == list(reversed(range(n)))
    if n < budget:
        assert replay.advances == 0  # everything fit: no recomputation
    elif n - 1 <= budget:
        assert replay.advances == n - 1
    else:
        r = next(r for r in range(n) if comb(budget + 1 + r, budget + 1) >= n)
        assert replay.advances == r * n - comb(budget + 1 + r, budget + 2)


def test_uniform_schedule_keeps_at_most_the_budget_in_the_forward_pass():
    policy = Uniform(6)
    for i in range(101):
        policy.keep(i, i, None)
        assert len(policy.kept) <= 6
    assert sorted(policy.kept) == [0, 32, 64, 96]
    replay = _CountingReplay()
    order = [i for i, _ in policy.reversed_states(100, replay)]
    assert order == list(reversed(range(100))) and replay.advances == 100 - 4


def test_checkpoints_are_for_aca():
    with pytest.raises(ValueError, match="are for gradient='aca', not 'direct'"):
        physode.odeint(Neural(), torch.ones(3, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), gradient="direct",
                       options={"checkpoints": 4})
    with pytest.raises(ValueError, match="checkpoint_schedule'\\] must be one of"):
        physode.odeint(Neural(), torch.ones(3, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                       options={"checkpoints": 4, "checkpoint_schedule": "revolve"})


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_anode_fixed_grid_aca_holds_no_per_stage_graph(method):
    """ANODE: aca on a fixed grid saves nothing for autograd in the forward pass (direct saves every
    stage of every step), and gives direct's gradient."""
    func = Neural(hidden=32)
    y0 = torch.randn(16, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 2.0], dtype=F64)
    one_evaluation = saved_numbers(lambda: func(t[0], y0.detach()))
    saved, grads = {}, {}
    for gradient in ("aca", "direct"):
        ys = []
        saved[gradient] = saved_numbers(lambda: ys.append(
            physode.odeint(func, y0, t, method=method, gradient=gradient, options={"step_size": 0.02})))
        grads[gradient] = torch.autograd.grad(ys[0][-1].square().sum(), [y0, *func.parameters()])
    # aca: one evaluation at the call (checking func's dependencies), the times, the stacked outputs
    assert saved["aca"] <= one_evaluation + 2 + 2 * y0.numel()
    assert saved["direct"] > 100 * one_evaluation  # 100 steps, each stage's graph
    for a, d in zip(grads["aca"], grads["direct"]):
        assert (a - d).abs().max() <= 1e-12 * (1 + d.abs().max())
