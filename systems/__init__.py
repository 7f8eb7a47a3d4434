"""The zoo of declared dynamical systems, installed as physode.systems."""

from .lotka_volterra import LotkaVolterra, LotkaVolterraHybrid
from .pendulum import DampedPendulum, Pendulum
from .three_body import ThreeBody, ThreeBodyHybrid, gravity

__all__ = ["DampedPendulum", "LotkaVolterra", "LotkaVolterraHybrid", "Pendulum", "ThreeBody", "ThreeBodyHybrid", "gravity"]
