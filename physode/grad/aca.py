"""The Adaptive Checkpoint Adjoint (Zhuang, Dvornek, Li, Tatikonda, Papademetris & Duncan,
"Adaptive Checkpoint Adjoint Method for Gradient Estimation in Neural ODE", ICML 2020)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ..solve import Stepper
from .base import Problem
from .schedules import SCHEDULES, StoreAll
from .sweep import solve_with_reverse_sweep


@dataclass(frozen=True)
class ACA:
    """Forward without a graph, keeping the accepted steps and their states z_i; backward walks the
    steps in reverse, recomputes each from z_i with a local graph and makes one vector-Jacobian
    product per step.

    The same discrete computation as `direct`, so the same gradient to round-off, in memory
    O(steps x state) plus one step's graph. Outputs inside a step get their gradient through that
    step's interpolant. With a fixed-step method this is ANODE's checkpointing (Gholami, Keutzer &
    Biros, IJCAI 2019). With `checkpoints` = K at most K states are kept and the rest are
    recomputed, by the `schedule` "binomial" (the fewest recomputations) or "uniform" (see
    physode.grad.schedules). No double backward.
    """

    checkpoints: int | None = None
    schedule: str = "binomial"

    name: ClassVar[str] = "aca"
    needs_params: ClassVar[bool] = True

    def __post_init__(self):
        budget = self.checkpoints
        if budget is not None and not (isinstance(budget, numbers.Integral) and not isinstance(budget, bool) and budget > 0):
            raise ValueError(f"ACA checkpoints must be a positive integer or None, got {self.checkpoints!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"ACA schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")

    def check(self, stepper: Stepper) -> None:
        """Any stepper."""

    def solve(self, problem: Problem) -> Tensor:
        policy = StoreAll() if self.checkpoints is None else SCHEDULES[self.schedule](int(self.checkpoints))
        return solve_with_reverse_sweep(problem, policy, self.name)
