"""The zoo of declared dynamical systems, installed as physode.systems."""

from .lotka_volterra import LotkaVolterraHybrid
from .pendulum import Pendulum
from .three_body import ThreeBody, ThreeBodyHybrid, gravity

__all__ = ["LotkaVolterraHybrid", "Pendulum", "ThreeBody", "ThreeBodyHybrid", "gravity"]
