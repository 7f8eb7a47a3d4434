"""A pendulum of unknown length whose friction, of unknown form, is learned."""

from __future__ import annotations

import torch

from physode import MLP, Constant, Learned, Parameter, State, System
from physode.model import first_difference


class Pendulum(System):
    """theta'' = -(g / L) sin(theta) + theta' h(theta'): the length L is unknown, the friction
    theta' h(theta') is learned (h an MLP; the product vanishes at rest, as friction does), and
    only the angle is observed."""

    angle = State(units="rad")
    angular_velocity = State(units="rad / s")
    length = Parameter(1.0, positive=True, units="m")
    gravity = Constant(9.81, units="m / s^2")
    friction = Learned(MLP, 1, 1, hidden=(32, 32))
    observed = ("angle",)

    def physics(self, t, s):
        return {"angle": s.angular_velocity, "angular_velocity": -self.gravity / self.length * torch.sin(s.angle)}

    def learned(self, t, s):
        omega = s.angular_velocity
        return {"angular_velocity": omega * self.friction(omega.unsqueeze(-1)).squeeze(-1)}

    def initial_guess(self, times, observed):
        guess = super().initial_guess(times, observed)
        rate = first_difference(times, observed["angle"])
        return guess if rate is None else {**guess, "angular_velocity": rate}
