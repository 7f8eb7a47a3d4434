"""What a gradient method is given, and the interface it implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from torch import Tensor

from ..solve import Callbacks, Clock, Controller, CountedFunc, Stats, Stepper, StepRecord, Stops, Tolerance, integrate


@dataclass
class Problem:
    """A validated initial value problem on a flat state, and the numerics that solve it.

    `times` are the output times in the state's dtype (still attached to the user's t), `f0` is
    func(times[0], y0) evaluated at the call, and `params` are the tensors func depends on whose
    gradients are wanted. `land` makes the steps end on every output time, `stops` on other times
    too; `max_steps` bounds the accepted steps; `callbacks` are the func's step callbacks.
    """

    func: CountedFunc
    y0: Tensor
    f0: Tensor
    times: Tensor
    params: tuple[Tensor, ...]
    stepper: Stepper
    controller: Controller
    tolerance: Tolerance
    land: bool
    max_steps: int
    stats: Stats
    stops: Stops = Stops()
    callbacks: Callbacks | None = None

    def clock(self, times: Tensor) -> Clock:
        return Clock(times, self.land, self.stops)

    def integrate(
        self, y0: Tensor, f0: Tensor, times: Tensor, keep: Callable | None = None
    ) -> tuple[list[Tensor], StepRecord]:
        """The stepping loop from y0 (with f0 = func(times[0], y0)) to the output times."""
        return integrate(self.func, self.stepper, self.controller, self.tolerance, y0, f0, self.clock(times),
                         self.max_steps, self.stats, keep=keep, callbacks=self.callbacks)


class GradientMethod(Protocol):
    """A strategy that solves a Problem and makes its outputs differentiable.

    `check(stepper)` raises a ValueError if the method cannot differentiate that stepper. `solve`
    returns the states at every output time, shape (len(times), *y0.shape), with gradients for
    y0, params and times. `needs_params` says whether gradients reach only the declared params
    (so that func must not depend on other tensors that require grad).
    """

    name: ClassVar[str]
    needs_params: ClassVar[bool]

    def check(self, stepper: Stepper) -> None: ...

    def solve(self, problem: Problem) -> Tensor: ...
