"""physode: physics-informed dynamical-systems modelling on an ODE engine with accurate gradients."""

from . import data
from .fit import FitResult, fit
from .grad import GradientMethod
from .nn import MLP
from .odeint import Solution, odeint, solve
from .solve import SolverError, Stats
from .system import Constant, Learned, Parameter, State, System
from .training import FitError

__version__ = "0.1.0"

__all__ = [
    "MLP", "Constant", "FitError", "FitResult", "GradientMethod", "Learned", "Parameter", "Solution", "SolverError",
    "State", "Stats", "System", "data", "fit", "odeint", "solve",
]
