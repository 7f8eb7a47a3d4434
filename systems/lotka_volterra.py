"""Predator and prey: the classical Lotka-Volterra model, and a hybrid whose interaction is learned."""

from __future__ import annotations

import torch

from physode import MLP, Learned, Parameter, State, System


class LotkaVolterra(System):
    """x' = alpha x - beta x y,  y' = -gamma y + delta x y (Lotka 1925, Volterra 1926): prey x and
    predators y with four unknown positive rates; both populations are observed."""

    prey = State(units="population")
    predator = State(units="population")
    alpha = Parameter(1.0, positive=True, units="1 / time", description="prey growth rate")
    beta = Parameter(1.0, positive=True, units="1 / (population time)", description="predation rate")
    gamma = Parameter(1.0, positive=True, units="1 / time", description="predator death rate")
    delta = Parameter(1.0, positive=True, units="1 / (population time)", description="predator growth per prey eaten")

    def physics(self, t, s):
        encounters = s.prey * s.predator
        return {"prey": self.alpha * s.prey - self.beta * encounters,
                "predator": -self.gamma * s.predator + self.delta * encounters}


class LotkaVolterraHybrid(System):
    """x' = alpha x + x y h1(x, y),  y' = -gamma y + x y h2(x, y): the rates alpha and gamma are
    unknown positive parameters and the interaction, which vanishes when either population does,
    is learned: h is an MLP of both populations (in the classical model h1 = -beta, h2 = delta;
    with a saturating predator, h = -beta / (1 + h x), delta / (1 + h x)). Both populations are
    observed. Scaling h by x y keeps alpha and gamma identifiable: the network cannot imitate the
    growth and decay terms."""

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
