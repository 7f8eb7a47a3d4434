"""Numerics: Runge-Kutta and leapfrog steps, step-size control and the stepping loop. Imports
nothing else of physode."""

from .alf import AsynchronousLeapfrog
from .clock import Clock, Node, Span
from .control import PIController, StepControl
from .errors import SolverError
from .grid import Grid
from .loop import integrate
from .rk import RungeKutta
from .stats import CountedFunc, Stats
from .stepper import FIXED_STEP_METHODS, METHODS, STEPPERS, Stepper, make_stepper
from .tableaus import TABLEAUS, ButcherTableau

__all__ = [
    "FIXED_STEP_METHODS", "METHODS", "TABLEAUS", "AsynchronousLeapfrog", "ButcherTableau", "Clock",
    "CountedFunc", "Grid", "Node", "PIController", "RungeKutta", "STEPPERS", "SolverError", "Span", "Stats",
    "StepControl", "Stepper", "integrate", "make_stepper",
]
