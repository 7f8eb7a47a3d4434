"""Three point masses under Newtonian gravity, with unknown masses; and a hybrid with a learned
correction for forces the physics omits."""

from __future__ import annotations

import torch
from torch import Tensor

from physode import MLP, Constant, Learned, Parameter, State, System
from physode.model import initial_rate


def gravity(position: Tensor, mass: Tensor, constant: Tensor) -> Tensor:
    """Accelerations a_i = G sum_{j != i} m_j (r_j - r_i) / |r_j - r_i|^3 for positions (..., bodies, 3)."""
    separation = position.unsqueeze(-3) - position.unsqueeze(-2)  # [..., i, j, :] = r_j - r_i
    eye = torch.eye(position.shape[-2], dtype=position.dtype, device=position.device)
    distance = separation.norm(dim=-1) + eye
    weight = mass * (1 - eye) / distance**3
    return constant * (weight.unsqueeze(-1) * separation).sum(dim=-2)


class ThreeBody(System):
    """Newtonian gravity of three bodies in 3-D: r_i'' = G sum_j m_j (r_j - r_i) / |r_j - r_i|^3.

    The gravitational constant is known (G = 1 in the units of the data), the masses are unknown
    and positive, and only the positions are observed; the initial velocities are fitted, starting
    from the slope of the first observed positions (physode.model.initial_rate).
    """

    position = State((3, 3), dims=("body", "axis"), units="length")
    velocity = State((3, 3), dims=("body", "axis"), units="length / time")
    mass = Parameter([1.0, 1.0, 1.0], positive=True, units="mass")
    gravitational_constant = Constant(1.0, units="length^3 / (mass time^2)")
    observed = ("position",)

    def physics(self, t, s):
        return {"position": s.velocity, "velocity": gravity(s.position, self.mass, self.gravitational_constant)}

    def initial_guess(self, times, observed):
        guess = super().initial_guess(times, observed)
        rate = initial_rate(times, observed["position"])
        return guess if rate is None else {**guess, "velocity": rate}


class ThreeBodyHybrid(ThreeBody):
    """ThreeBody plus a learned acceleration: an MLP of all positions and velocities, added to
    gravity, for a force the physics omits (drag from a medium, say)."""

    correction = Learned(MLP, 18, 9, hidden=(64, 64))

    def learned(self, t, s):
        features = torch.cat([s.position.flatten(-2), s.velocity.flatten(-2)], dim=-1)
        return {"velocity": self.correction(features).unflatten(-1, (3, 3))}
