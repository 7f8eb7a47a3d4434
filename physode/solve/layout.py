"""A state that is a tensor or a tuple of tensors, seen by the solver as one tensor."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

StateTensors = Tensor | tuple[Tensor, ...]


class StateLayout:
    """How a user's state (a tensor, or a tuple of tensors) maps to the solver's single tensor.

    A single tensor keeps its shape; a tuple is flattened and concatenated, in order.
    """

    def __init__(self, y0: StateTensors):
        self.is_tuple = not isinstance(y0, Tensor)
        self.shapes = [p.shape for p in y0] if self.is_tuple else [y0.shape]
        self.sizes = [s.numel() for s in self.shapes]

    def flatten(self, pieces: StateTensors, batch: int = 0) -> Tensor:
        """The solver's tensor from the user's state; `batch` leading dimensions are kept."""
        if not self.is_tuple:
            return pieces
        return torch.cat([p.reshape(*p.shape[:batch], -1) for p in pieces], dim=batch)

    def unflatten(self, flat: Tensor, *batch: int) -> StateTensors:
        """The user's state from the solver's tensor; `batch` leading dimensions are kept."""
        if not self.is_tuple:
            return flat
        return tuple(p.reshape((*batch, *s)) for p, s in zip(flat.split(self.sizes, dim=-1), self.shapes))

    def wrap(self, func: Callable) -> Callable:
        """func on the user's state -> the same vector field on the solver's tensor."""
        if not self.is_tuple:
            return func
        return lambda t, y: self.flatten(func(t, self.unflatten(y)))
