"""Predator and prey with known growth and decay but an interaction of unknown form."""

from __future__ import annotations

import torch

from physode import MLP, Learned, Parameter, State, System


class LotkaVolterraHybrid(System):
    """x' = alpha x + g1(x, y),  y' = -gamma y + g2(x, y): the rates alpha and gamma are unknown
    positive parameters and the interaction g (in the classical model -beta x y and +delta x y)
    is an MLP of both populations. Both populations are observed."""

    prey = State(units="population")
    predator = State(units="population")
    alpha = Parameter(1.0, positive=True, units="1 / time")
    gamma = Parameter(1.0, positive=True, units="1 / time")
    interaction = Learned(MLP, 2, 2, hidden=(32, 32))

    def physics(self, t, s):
        return {"prey": self.alpha * s.prey, "predator": -self.gamma * s.predator}

    def learned(self, t, s):
        g = self.interaction(torch.stack([s.prey, s.predator], dim=-1))
        return {"prey": g[..., 0], "predator": g[..., 1]}
