"""One segment of an integration with events: the checked problem from a start, the search for its
events and their differentiable replay; shared by the hybrid solver and the torchdiffeq interface."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..checks import check_gradient
from ..grad import GradientMethod, Problem
from ..problem import setup
from ..solve import StateTensors, Stops
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

    def __post_init__(self):
        name = check_gradient(self.gradient).name
        if name not in DIFFERENTIABLE:
            raise ValueError(f"gradient={name!r} cannot differentiate event times; use one of {DIFFERENTIABLE} "
                             "(or ACA(...), Direct()), which retake the event search's steps")

    def setup(self, y: StateTensors, start: Tensor, direction: float) -> tuple[Problem, GradientMethod]:
        """The checked problem from (start, y); the second time of setup's span sets only the direction."""
        problem, _, strategy = setup(self.func, y, torch.stack([start, start.detach() + direction]), self.method,
                                     self.rtol, self.atol, self.gradient, self.options, self.params)
        if not problem.stepper.has_dense_output:
            raise ValueError(f"method {problem.stepper.name!r} has no dense output to locate events on; "
                             "use a Runge-Kutta method such as dopri5 or tsit5")
        if problem.land:
            raise ValueError("events are located on the dense output of steps of their own: they take neither "
                             "options['land_on_outputs'] nor a fixed-step method without options['step_size']")
        if problem.stops != Stops():
            raise ValueError("options['step_t'], ['jump_t'], ['grid_constructor'] and ['perturb'] do not apply with "
                             "events")
        return problem, strategy


def run_segment(
    solver: Solver, y: StateTensors, start: Tensor, direction: float, guards: Guards, signs: list[int],
    end: Tensor | None, pending: list[Tensor], events_left: int | None, steps_left: int | None,
) -> tuple[Plan, Replayed, Problem]:
    """Integrate from (start, y) until an event stops the segment or to `end` (None: no end time):
    search without a graph, then replay with the gradient method.

    `pending` are the output times after `start`, in order; the replay has outputs at those before
    the event that stops the segment (all of them where it runs to `end`). `steps_left` None takes
    the problem's max_steps.
    """
    problem, strategy = solver.setup(y, start, direction)
    t_end = None if end is None else end.item()
    plan = search(problem, guards, signs, direction, t_end, events_left,
                  problem.max_steps if steps_left is None else steps_left)
    if plan.stopped:
        stop = plan.crossings[-1].t
        pending = [t for t in pending if (t.item() - stop) * direction < 0]
    return plan, replay(problem, strategy, plan, guards, pending, None if plan.stopped else end), problem
