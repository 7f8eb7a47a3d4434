"""A multilayer perceptron for learned vector-field terms."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "silu": nn.SiLU, "elu": nn.ELU}


class MLP(nn.Module):
    """in_features -> hidden layers -> out_features, acting on the last dimension.

    `final_scale` multiplies the initial weights of the last layer (default 0.1), so that a freshly
    initialised learned term starts as a small correction to the known physics.
    """

    def __init__(
        self, in_features: int, out_features: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
        final_scale: float = 0.1,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        widths = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            last = layers[-1]
            last.weight.mul_(final_scale)
            last.bias.mul_(final_scale)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
