"""Backpropagation through the accepted steps of the solver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ..solve import Stepper
from .base import Problem


@dataclass(frozen=True)
class Direct:
    """Autograd through every accepted step, with the step-size search detached.

    The gradient of the discrete solution, exactly; memory holds the graph of every stage of every
    step. Supports double backward.
    """

    name: ClassVar[str] = "direct"
    needs_params: ClassVar[bool] = False

    def check(self, stepper: Stepper) -> None:
        """Any stepper."""

    def solve(self, problem: Problem) -> Tensor:
        outputs, _ = problem.integrate(problem.y0, problem.f0, problem.times)
        return outputs
