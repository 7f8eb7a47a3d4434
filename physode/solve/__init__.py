"""Numerics: Runge-Kutta and leapfrog steps, step-size controllers and the stepping loop. Imports
nothing else of physode."""

from .alf import AsynchronousLeapfrog
from .callbacks import NAMES as CALLBACKS
from .callbacks import Callbacks
from .clock import Clock, Node, Span, Stops, aside
from .compiled import SETTINGS as COMPILE_SETTINGS
from .compiled import CompiledStepper
from .control import (
    ConstantStep, Controller, GridSteps, IController, PIController, Tolerance, Trial, check_setting, resolvable_rtol,
    rms,
)
from .errors import SolverError, caller_stacklevel
from .layout import StateLayout, StateTensors
from .loop import LAND_TOLERANCE, Outputs, attempt, integrate
from .record import StepRecord
from .rk import RungeKutta
from .stats import CountedFunc, Stats
from .stepper import FIXED_STEP_METHODS, METHODS, REGISTRY, DenseOutput, Method, Reversible, Stepper, make_stepper
from .tableaus import TABLEAUS, ButcherTableau

__all__ = [
    "CALLBACKS", "COMPILE_SETTINGS", "FIXED_STEP_METHODS", "LAND_TOLERANCE", "METHODS", "REGISTRY", "TABLEAUS", "AsynchronousLeapfrog", "ButcherTableau", "Callbacks", "Clock", "CompiledStepper",
    "ConstantStep", "Controller", "CountedFunc", "GridSteps", "DenseOutput", "IController", "Method", "Node", "Outputs", "PIController",
    "Reversible", "RungeKutta", "SolverError", "Span", "Stops", "StateLayout", "StateTensors", "Stats", "StepRecord", "Stepper",
    "Tolerance", "Trial", "aside", "attempt", "caller_stacklevel", "check_setting", "integrate", "make_stepper",
    "resolvable_rtol", "rms",
]
