"""CUDA: every solver and gradient method gives the CPU's answer on the GPU (skipped without CUDA)."""

import pytest
import torch

import physode
from physode.grad.adjoint import TORCHDIFFEQ_METHODS
from physode.solve import METHODS, TABLEAUS
from problems import F64, Neural

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("gradient", ["aca", "direct", "adjoint", "mali", "aca-checkpoints"])
def test_cuda_matches_cpu(method, gradient):
    if gradient == "adjoint" and method not in TORCHDIFFEQ_METHODS:
        pytest.skip(f"gradient='adjoint' runs torchdiffeq, which has no {method}")
    if gradient == "mali" and method != "alf":
        pytest.skip("mali is for alf")
    options = {"step_size": 0.05} if method in TABLEAUS and not TABLEAUS[method].adaptive else {}
    if gradient == "aca-checkpoints":
        gradient, options = "aca", {**options, "checkpoints": 3}
    results = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        func = Neural().to(device)
        y0 = torch.randn(8, 3, dtype=F64, device=device, requires_grad=True)
        t = torch.tensor([0.0, 0.5, 1.0], dtype=F64, device=device, requires_grad=True)
        sol = physode.solve(func, y0, t, method=method, gradient=gradient, rtol=1e-6, atol=1e-8, options=options or None)
        assert sol.ys.device.type == device
        grads = torch.autograd.grad(sol.ys.square().sum(), [y0, t, *func.parameters()])
        assert all(g.device.type == device for g in grads)
        results.append([sol.ys, *grads])
    for a, b in zip(*results):
        assert torch.allclose(a, b.cpu(), rtol=1e-6, atol=1e-9)


def test_cuda_float32_tuple_state():
    x0 = torch.ones(4, device="cuda")
    v0 = torch.zeros(4, device="cuda")
    xs, vs = physode.odeint(lambda t, s: (s[1], -s[0]), (x0, v0), torch.linspace(0, 1, 5, device="cuda"), params=())
    assert xs.device.type == "cuda" and xs.dtype == torch.float32
    assert torch.allclose(xs[-1].cpu(), torch.cos(torch.tensor(1.0)).expand(4), atol=1e-5)


@pytest.mark.parametrize("gradient, method", [("aca", "dopri5"), ("adjoint", "dopri5"), ("mali", "alf")])
def test_cuda_latent_ode_matches_cpu(gradient, method):
    from physode.series.irregular import IrregularBatch, interpolation_task
    from physode.nn import LatentODE

    results = []
    for device in ("cpu", "cuda"):
        t = torch.linspace(0, 1, 12, dtype=F64, device=device)
        x = torch.sin(3 * t + torch.linspace(0, 1, 4, dtype=F64, device=device)[:, None])[:, :, None]
        task = interpolation_task(IrregularBatch(t, x, torch.ones_like(x)), 0.5,
                                  generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        model = LatentODE(1, 3, encoder_hidden=5, units=(8,), gradient=gradient, method=method, dtype=F64,
                          device=device)
        loss = model.negative_elbo(task, samples=2, generator=torch.Generator().manual_seed(1))
        grads = torch.autograd.grad(loss, list(model.parameters()))
        assert loss.device.type == device and all(g.device.type == device for g in grads)
        results.append([loss, *grads])
    for a, b in zip(*results):
        assert torch.allclose(a, b.cpu(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("compile", [True, {"mode": "reduce-overhead"}])
@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_cuda_compiled_steps_match_cpu(compile, gradient):
    """The compiled step on the GPU (Inductor's kernels; with mode='reduce-overhead', CUDA graphs)
    gives the CPU's eager solution and gradients."""
    results = []
    for device, options in (("cpu", None), ("cuda", {"compile": compile})):
        torch.manual_seed(0)
        func = Neural().to(device)
        y0 = torch.randn(8, 3, dtype=F64, device=device, requires_grad=True)
        t = torch.linspace(0.0, 1.0, 5, dtype=F64, device=device)
        sol = physode.solve(func, y0, t, gradient=gradient, rtol=1e-6, atol=1e-8, options=options)
        grads = torch.autograd.grad(sol.ys.square().sum(), [y0, *func.parameters()])
        results.append([sol.ys, *grads])
    for a, b in zip(*results):
        assert torch.allclose(a, b.cpu(), rtol=1e-6, atol=1e-9)
