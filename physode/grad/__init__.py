"""Gradient methods: one strategy per file, each a small frozen dataclass that owns its options."""

from .aca import ACA
from .adjoint import Adjoint
from .base import GradientMethod, Problem
from .direct import Direct
from .mali import MALI

GRADIENTS: dict[str, GradientMethod] = {g.name: g for g in (ACA(), Direct(), Adjoint(), MALI())}

__all__ = ["ACA", "GRADIENTS", "MALI", "Adjoint", "Direct", "GradientMethod", "Problem"]
