"""Predator and prey with known growth and decay but an interaction of unknown form."""

from __future__ import annotations

import torch

from physode import MLP, Learned, Parameter, State, System


class LotkaVolterraHybrid(System):
    """x' = alpha x + x y h1(x, y),  y' = -gamma y + x y h2(x, y): the rates alpha and gamma are
    unknown positive parameters and the interaction, which vanishes when either population does,
    is learned: h is an MLP of both populations (in the classical model h1 = -beta, h2 = delta).
    Both populations are observed. Scaling h by x y keeps alpha and gamma identifiable: the network
    cannot imitate the growth and decay terms."""

    prey = State(units="population")
    predator = State(units="population")
    alpha = Parameter(1.0, positive=True, units="1 / time")
    gamma = Parameter(1.0, positive=True, units="1 / time")
    interaction = Learned(MLP, 2, 2, hidden=(32, 32))

    def physics(self, t, s):
        return {"prey": self.alpha * s.prey, "predator": -self.gamma * s.predator}

    def learned(self, t, s):
        h = self.interaction(torch.stack([s.prey, s.predator], dim=-1))
        encounters = s.prey * s.predator
        return {"prey": encounters * h[..., 0], "predator": encounters * h[..., 1]}
