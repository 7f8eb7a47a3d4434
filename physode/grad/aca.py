"""The Adaptive Checkpoint Adjoint (Zhuang, Dvornek, Li, Tatikonda, Papademetris & Duncan,
"Adaptive Checkpoint Adjoint Method for Gradient Estimation in Neural ODE", ICML 2020)."""

from __future__ import annotations

from torch import Tensor

from .base import Problem
from .checkpoints import SCHEDULES, StoreAll
from .sweep import solve_with_reverse_sweep


class ACA:
    """Forward without a graph, keeping the accepted steps and their states z_i; backward walks the
    steps in reverse, recomputes each from z_i with a local graph and makes one vector-Jacobian
    product per step.

    The same discrete computation as `direct`, so the same gradient to round-off, in memory
    O(steps x state) plus one step's graph. Outputs inside a step get their gradient through that
    step's interpolant. With a fixed-step method this is ANODE's checkpointing (Gholami, Keutzer &
    Biros, IJCAI 2019). With options={"checkpoints": K} at most K states are kept and the rest are
    recomputed (`checkpoint_schedule` "binomial", the default, or "uniform"). No double backward.
    """

    name = "aca"
    needs_params = True

    def solve(self, problem: Problem) -> Tensor:
        if problem.checkpoints is None:
            policy = StoreAll()
        else:
            policy = SCHEDULES[problem.checkpoint_schedule](problem.checkpoints)
        return solve_with_reverse_sweep(problem, policy)
