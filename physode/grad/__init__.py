"""Gradient methods: one strategy per file, all with the GradientMethod interface."""

from .aca import ACA
from .adjoint import Adjoint
from .base import GradientMethod, Problem
from .direct import Direct

GRADIENTS: dict[str, GradientMethod] = {g.name: g for g in (ACA(), Direct(), Adjoint())}

__all__ = ["ACA", "GRADIENTS", "Adjoint", "Direct", "GradientMethod", "Problem"]
