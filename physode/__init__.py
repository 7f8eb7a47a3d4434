"""physode: physics-informed dynamical-systems modelling on an ODE engine with accurate gradients."""

from .grad import GradientMethod
from .odeint import Solution, odeint, solve
from .solve import SolverError, Stats

__version__ = "0.1.0"

__all__ = ["GradientMethod", "Solution", "SolverError", "Stats", "odeint", "solve"]
