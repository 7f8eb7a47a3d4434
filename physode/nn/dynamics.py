"""Latent dynamics as a System: dz/dt = f_theta(z), a vector field that is one learned term."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..checks import check_count
from ..model import State, StateValues, System
from .mlp import MLP


class LatentDynamics(System):
    """An autonomous System with one state `z` of `size` dims and dz/dt = MLP(z) (Chen et al.,
    "Neural ordinary differential equations", NeurIPS 2018). Build it with LatentDynamics.of(size)."""

    _classes: dict[int, type] = {}

    @classmethod
    def of(cls, size: int, hidden: Sequence[int] = (100, 100), activation: str = "tanh", *,
           dtype: torch.dtype | None = None, device=None) -> LatentDynamics:
        """A LatentDynamics whose state z has `size` dims and whose field is MLP(size, size, hidden)."""
        check_count("size", size)
        if size not in cls._classes:
            cls._classes[size] = type(f"LatentDynamics{size}", (cls,), {"z": State((size,), dims=("latent",)),
                                                                       "__module__": cls.__module__})
        return cls._classes[size](hidden, activation, dtype=dtype, device=device)

    def __init__(self, hidden: Sequence[int] = (100, 100), activation: str = "tanh", *, dtype=None, device=None):
        super().__init__(dtype=dtype, device=device)
        size = type(self).states()["z"].shape[0]
        self.field = MLP(size, size, hidden, activation, final_scale=1.0).to(dtype=dtype or torch.get_default_dtype(),
                                                                           device=device)

    def learned(self, t: Tensor, s: StateValues) -> dict[str, Tensor]:
        return {"z": self.field(s.z)}
