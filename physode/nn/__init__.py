"""Reusable networks: MLPs for learned terms, latent dynamics, the ODE-RNN and the Latent ODE."""

from .dynamics import LatentDynamics
from .latent_ode import KLAnnealing, LatentODE
from .mlp import MLP
from .odernn import ODERNN

__all__ = ["MLP", "ODERNN", "KLAnnealing", "LatentDynamics", "LatentODE"]
