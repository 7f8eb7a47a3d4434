"""Counts of the work a solve did, forward and backward."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Stats:
    """Function evaluations and accepted/rejected steps of the forward pass and of the backward pass.

    The backward fields are filled in when backward runs; a gradient method that does not know
    its backward step counts (torchdiffeq's adjoint) leaves them as None.
    """

    nfe: int = 0
    accepted: int = 0
    rejected: int = 0
    nfe_backward: int = 0
    accepted_backward: int | None = 0
    rejected_backward: int | None = 0


class CountedFunc:
    """func(t, y), counting evaluations into `stats.nfe` or, while `backward` is set, `stats.nfe_backward`."""

    def __init__(self, func: Callable, stats: Stats):
        self.func, self.stats, self.backward = func, stats, False

    def __call__(self, t, y):
        self.count(1)
        return self.func(t, y)

    def count(self, evaluations: int) -> None:
        """Count evaluations made of self.func directly (by a compiled step)."""
        if self.backward:
            self.stats.nfe_backward += evaluations
        else:
            self.stats.nfe += evaluations
