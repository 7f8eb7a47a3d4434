"""What a gradient method is given, and the interface it implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

from ..solve import Clock, CountedFunc, Stats, StepControl, Stepper


@dataclass
class Problem:
    """A validated initial value problem on a flat state.

    `times` are the output times in the state's dtype (still attached to the user's t), `f0` is
    func(times[0], y0) evaluated at the call, and `params` are the tensors func depends on whose
    gradients are wanted. `checkpoints` (a budget of stored states, or None for all) and
    `checkpoint_schedule` are for the methods that store states.
    """

    func: CountedFunc
    y0: Tensor
    f0: Tensor
    times: Tensor
    params: tuple[Tensor, ...]
    stepper: Stepper
    control: StepControl
    land: bool
    stats: Stats
    gradient: str
    checkpoints: int | None = None
    checkpoint_schedule: str = "binomial"

    def clock(self, times: Tensor) -> Clock:
        return Clock(times, self.land)


class GradientMethod(Protocol):
    """A strategy that solves a Problem and makes its outputs differentiable.

    `solve` returns the states at every output time, shape (len(times), *y0.shape), with gradients
    for y0, params and times. `needs_params` says whether gradients reach only the declared params
    (so that func must not depend on other tensors that require grad).
    """

    name: str
    needs_params: bool

    def solve(self, problem: Problem) -> Tensor: ...
