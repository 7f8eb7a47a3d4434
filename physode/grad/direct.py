"""Backpropagation through the accepted steps of the solver."""

from __future__ import annotations

import torch
from torch import Tensor

from ..solve import integrate
from .base import Problem


class Direct:
    """Autograd through every accepted step, with the step-size search detached.

    The gradient of the discrete solution, exactly; memory holds the graph of every stage of every
    step. Supports double backward.
    """

    name = "direct"
    needs_params = False

    def solve(self, problem: Problem) -> Tensor:
        p = problem
        outputs, _ = integrate(p.func, p.stepper, p.y0, p.f0, p.clock(p.times), p.control, p.stats)
        return torch.stack(outputs)
