"""The memory-efficient, reverse-accurate integrator (Zhuang, Dvornek, Tatikonda & Duncan,
"MALI: A memory efficient and reverse accurate integrator for Neural ODEs", ICLR 2021)."""

from __future__ import annotations

from torch import Tensor

from .base import Problem
from .checkpoints import Reconstruct
from .sweep import solve_with_reverse_sweep


class MALI:
    """Gradients through the asynchronous leapfrog (method="alf") in memory constant in the
    number of steps.

    The forward pass keeps only the final (z, v) and the accepted step sizes; the backward pass
    rebuilds each earlier state with the exact inverse ALF step, recomputes that step with a
    local graph and makes one vector-Jacobian product. The gradient is that of the discrete ALF
    solution (as `direct` through the same steps) up to the round-off of the reconstruction.
    """

    name = "mali"
    needs_params = True

    def solve(self, problem: Problem) -> Tensor:
        return solve_with_reverse_sweep(problem, Reconstruct(problem.stepper.eta))
