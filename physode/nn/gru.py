"""The ODE-RNN's update at an observation: PyTorch's GRU cell on the hidden state, or the GRU of
Rubanova et al.'s code on a hidden mean and standard deviation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .mlp import MLP

CELLS = ("gru", "gaussian")


class GaussianGRUCell(nn.Module):
    """A GRU over a hidden state h = [mean, std] (Rubanova, Chen & Duvenaud, NeurIPS 2019; their
    code's GRU_unit): with y = [mean, std, x],

        u = sigmoid(U(y)),  r = sigmoid(R(y)),  [m, s] = N([mean * r, std * r, x]),
        mean' = (1 - u) m + u mean,  std' = |(1 - u) |s| + u std|,

    where U, R and N are MLPs with one tanh layer of `units`. Only the mean follows the ODE
    between observations; the std changes at observations only.
    """

    def __init__(self, input_size: int, hidden: int, units: int = 100):
        super().__init__()
        self.hidden = hidden
        self.update = MLP(2 * hidden + input_size, hidden, (units,), final_scale=1.0)
        self.reset = MLP(2 * hidden + input_size, hidden, (units,), final_scale=1.0)
        self.new_state = MLP(2 * hidden + input_size, 2 * hidden, (units,), final_scale=1.0)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        mean, std = h.split(self.hidden, dim=-1)
        y = torch.cat([h, x], dim=-1)
        update, reset = torch.sigmoid(self.update(y)), torch.sigmoid(self.reset(y))
        candidate, spread = self.new_state(torch.cat([mean * reset, std * reset, x], dim=-1)).split(self.hidden, dim=-1)
        mean = (1 - update) * candidate + update * mean
        std = ((1 - update) * spread.abs() + update * std).abs()
        return torch.cat([mean, std], dim=-1)


def make_cell(cell: str, input_size: int, hidden: int, units: int) -> nn.Module:
    """The update `cell` ("gru": nn.GRUCell(input_size, hidden); "gaussian": GaussianGRUCell) as a
    module (input, h) -> h; its state has hidden (gru) or 2 * hidden (gaussian) entries."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    return nn.GRUCell(input_size, hidden) if cell == "gru" else GaussianGRUCell(input_size, hidden, units)
