"""Reusable networks: MLPs for learned terms, latent dynamics, the ODE-RNN (and its GRU cells) and the Latent ODE."""

from .dynamics import LatentDynamics
from .gru import GaussianGRUCell
from .latent_ode import KLAnnealing, LatentODE
from .mlp import MLP
from .odernn import ODERNN

__all__ = ["MLP", "ODERNN", "GaussianGRUCell", "KLAnnealing", "LatentDynamics", "LatentODE"]
