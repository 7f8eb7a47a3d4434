"""A pendulum of unknown length: with linear friction of unknown strength, or with friction of
unknown form, learned."""

from __future__ import annotations

import torch

from physode import MLP, Constant, Learned, Parameter, State, System
from physode.model import initial_rate


class DampedPendulum(System):
    """theta'' = -(g / L) sin(theta) - c theta': the length L and the friction coefficient c are
    unknown; only the angle is observed, the angular velocity starts from the slope of the first
    observations (physode.model.initial_rate)."""

    angle = State(units="rad")
    angular_velocity = State(units="rad / s")
    length = Parameter(1.0, positive=True, units="m")
    friction = Parameter(0.1, positive=True, units="1 / s")
    gravity = Constant(9.81, units="m / s^2")
    observed = ("angle",)

    def physics(self, t, s):
        return {"angle": s.angular_velocity,
                "angular_velocity": -self.gravity / self.length * torch.sin(s.angle) - self.friction * s.angular_velocity}

    def initial_guess(self, times, observed):
        guess = super().initial_guess(times, observed)
        rate = initial_rate(times, observed["angle"])
        return guess if rate is None else {**guess, "angular_velocity": rate}


class Pendulum(DampedPendulum):
    """theta'' = -(g / L) sin(theta) + theta' h(theta'): the length L is unknown, the friction
    theta' h(theta') is learned (h an MLP; the product vanishes at rest, as friction does), and
    only the angle is observed."""

    friction = Learned(MLP, 1, 1, hidden=(32, 32))

    def physics(self, t, s):
        return {"angle": s.angular_velocity, "angular_velocity": -self.gravity / self.length * torch.sin(s.angle)}

    def learned(self, t, s):
        omega = s.angular_velocity
        return {"angular_velocity": omega * self.friction(omega.unsqueeze(-1)).squeeze(-1)}
