"""physode: physics-informed dynamical-systems modelling on an ODE engine with accurate gradients.

Gradient methods with their options are in physode.grad (ACA, MALI, Direct, Adjoint), step-size
controllers in physode.solve (PIController, IController, ConstantStep).
"""

from .events import Event, HybridSolution, odeint_event, solve_hybrid
from .grad import GradientMethod
from .model import Constant, FitResult, Learned, Parameter, State, System, fit
from .nn import MLP
from .odeint import Solution, odeint, solve
from .sensitivity import Jacobian, Sensitivity, jacobian, jvp
from .series import dataset as data
from .solve import SolverError, Stats
from .training import FitError

__version__ = "0.1.0"

__all__ = [
    "MLP", "Constant", "Event", "FitError", "FitResult", "GradientMethod", "HybridSolution", "Jacobian", "Learned",
    "Parameter", "Sensitivity", "Solution", "SolverError", "State", "Stats", "System", "data", "fit", "jacobian", "jvp",
    "odeint", "odeint_event", "solve", "solve_hybrid",
]
