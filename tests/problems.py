"""Small test problems with known solutions, shared by the tests."""

import torch
from torch import nn

F64 = torch.float64


def exp_decay(t, y):
    return -0.7 * y


def cos_growth(t, y):
    """y' = cos(t) y; y(t) = y(t0) exp(sin t - sin t0)."""
    return torch.cos(t) * y


def cos_growth_exact(t, y0, t0=0.0):
    return y0 * torch.exp(torch.sin(t) - torch.sin(torch.as_tensor(t0, dtype=t.dtype)))


def oscillator(t, state):
    """Harmonic oscillator as a tuple state (x, v): x'' = -omega^2 x with omega = 2."""
    x, v = state
    return v, -4.0 * x


def van_der_pol(mu):
    def f(t, y):
        return torch.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])
    return f


def lotka_volterra(t, y):
    return torch.stack([1.5 * y[0] - y[0] * y[1], -3.0 * y[1] + y[0] * y[1]])


class Linear(nn.Module):
    """z' = a z with a learnable scalar rate (closed-form solution and gradients)."""

    def __init__(self, a=0.5, dtype=F64):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=dtype))

    def forward(self, t, z):
        return self.a * z


class Neural(nn.Module):
    """A small time-dependent MLP vector field."""

    def __init__(self, dim=3, hidden=16, dtype=F64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, dim)).to(dtype)

    def forward(self, t, y):
        return self.net(y) * torch.cos(t) - 0.1 * y


def saved_numbers(run) -> int:
    """How many numbers autograd saves for backward while `run()` executes."""
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda x: saved.append(x.numel()) or x, lambda x: x):
        run()
    return sum(saved)
