"""Numerics: Runge-Kutta steps, step-size control and the stepping loop. Imports nothing else of physode."""

from .clock import Clock, Node, Span
from .control import PIController, StepControl
from .errors import SolverError
from .loop import Grid, integrate
from .rk import RungeKutta
from .stats import CountedFunc, Stats
from .tableaus import TABLEAUS, ButcherTableau

__all__ = [
    "TABLEAUS", "ButcherTableau", "Clock", "CountedFunc", "Grid", "Node", "PIController", "RungeKutta",
    "SolverError", "Span", "Stats", "StepControl", "integrate",
]
