"""Gradient methods: one strategy per file, each a small frozen dataclass that owns its options."""

from .aca import ACA
from .adjoint import Adjoint
from .base import GradientMethod, Problem
from .direct import Direct
from .forward import Substitution, tangent_sweep
from .mali import MALI

GRADIENTS: dict[str, GradientMethod] = {g.name: g for g in (ACA(), Direct(), Adjoint(), MALI())}

__all__ = ["ACA", "GRADIENTS", "MALI", "Adjoint", "Direct", "GradientMethod", "Problem", "Substitution", "tangent_sweep"]
