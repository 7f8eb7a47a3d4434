"""One segment of an integration with events: the checked problem from a start, the search for its
events and their differentiable replay; shared by the hybrid solver and the torchdiffeq interface."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..grad import GradientMethod, Problem
from ..odeint import setup
from ..solve import METHODS, REGISTRY, StateTensors
from .guard import Guards
from .implicit import Replayed, replay
from .search import Plan, search

DIFFERENTIABLE = ("aca", "direct")  # the gradient methods that retake the search's steps


@dataclass(frozen=True)
class Solver:
    """The solver's arguments as odeint takes them, for every segment of one integration."""

    func: Callable
    method: str
    rtol: float | Tensor
    atol: float | Tensor
    gradient: str | GradientMethod
    options: dict | None
    params: Sequence[Tensor] | None

    def setup(self, y: StateTensors, start: Tensor, direction: float) -> tuple[Problem, GradientMethod]:
        """The checked problem from (start, y); the second time of setup's span sets only the direction."""
        problem, _, strategy = setup(self.func, y, torch.stack([start, start.detach() + direction]), self.method,
                                     self.rtol, self.atol, self.gradient, self.options, self.params)
        if strategy.name not in DIFFERENTIABLE:
            raise ValueError(f"gradient={strategy.name!r} cannot differentiate event times; use one of "
                             f"{DIFFERENTIABLE} (or ACA(...), Direct()), which retake the event search's steps")
        if not problem.stepper.has_dense_output:
            dense = [m for m in METHODS if REGISTRY[m].build is not None and m != problem.stepper.name]
            raise ValueError(f"method {problem.stepper.name!r} has no dense output to locate events on; "
                             f"use one of {', '.join(dense)}")
        if problem.land:
            raise ValueError("options['land_on_outputs'] does not apply with events: they are located on the dense output")
        return problem, strategy


def run_segment(
    solver: Solver, y: StateTensors, start: Tensor, direction: float, guards: Guards, signs: list[int],
    end: Tensor | None, outputs: list[Tensor], events_left: int | None, steps_left: int | None,
) -> tuple[Plan, Replayed, Problem]:
    """Integrate from (start, y) until an event stops the segment or to `end` (None: no end time):
    search without a graph, then replay with the gradient method. `outputs` are times strictly
    inside the segment (or at `end`); `steps_left` None takes the problem's max_steps."""
    problem, strategy = solver.setup(y, start, direction)
    t_end = None if end is None else end.item()
    plan = search(problem, guards, signs, direction, t_end, events_left,
                  problem.max_steps if steps_left is None else steps_left)
    return plan, replay(problem, strategy, plan, guards, outputs, None if plan.stopped else end), problem
