"""Modelling: declared Systems, fitting them to data, per-series estimates and parameter reports."""

from .declarations import Constant, Learned, Parameter, State
from .fit import FitResult, fit
from .system import StateValues, System, initial_rate

__all__ = ["Constant", "FitResult", "Learned", "Parameter", "State", "StateValues", "System", "fit", "initial_rate"]
