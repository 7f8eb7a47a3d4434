"""The memory-efficient, reverse-accurate integrator (Zhuang, Dvornek, Tatikonda & Duncan,
"MALI: A memory efficient and reverse accurate integrator for Neural ODEs", ICLR 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ..solve import Stepper
from .base import Problem
from .schedules import Reconstruct
from .sweep import solve_with_reverse_sweep


@dataclass(frozen=True)
class MALI:
    """Gradients through the asynchronous leapfrog (method="alf") in memory constant in the
    number of steps.

    The forward pass keeps only the final (z, v) and the accepted step sizes; the backward pass
    rebuilds each earlier state with the exact inverse ALF step, recomputes that step with a
    local graph and makes one vector-Jacobian product. The gradient is that of the discrete ALF
    solution (as `direct` through the same steps) up to the round-off of the reconstruction.
    """

    name: ClassVar[str] = "mali"
    needs_params: ClassVar[bool] = True

    def check(self, stepper: Stepper) -> None:
        """Only an exactly invertible stepper (physode.solve.Reversible)."""
        if not callable(getattr(stepper, "inverse", None)):
            raise ValueError(
                f"gradient='mali' differentiates the asynchronous leapfrog: use method='alf', not {stepper.name!r}"
            )

    def solve(self, problem: Problem) -> Tensor:
        return solve_with_reverse_sweep(problem, Reconstruct(problem.stepper), self.name)
