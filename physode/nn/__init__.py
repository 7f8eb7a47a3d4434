"""Reusable networks for the learned terms of a System."""

from .mlp import MLP

__all__ = ["MLP"]
