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
        first = y0[0] if self.is_tuple else y0
        self.dtype, self.device = first.dtype, first.device

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
        """func on the user's state -> the same vector field on the solver's tensor, each value checked
        (`derivative`); the user's func is its `__wrapped__`."""
        def checked(t, y):
            return self.derivative(func(t, self.unflatten(y)), t)

        checked.__wrapped__ = func
        return checked

    def derivative(self, f, t) -> Tensor:
        """func's value f at time t on the solver's tensor, once checked to be like the state (its
        structure, shapes, dtype and device), so that a func that changes what it returns is stopped
        where it does instead of being broadcast or cast. Costs a comparison of shapes per call."""
        if not self.is_tuple:
            if not self._matches(f, self.shapes[0]):
                self._refuse(f, self.shapes[0], t, "")
            return f
        if not (isinstance(f, (tuple, list)) and len(f) == len(self.shapes)):
            raise TypeError(f"func must return a tuple of {len(self.shapes)} tensors like y0, got {_describe(f)} "
                            f"(at t={float(t):.10g})")
        for i, (piece, shape) in enumerate(zip(f, self.shapes)):
            if not self._matches(piece, shape):
                self._refuse(piece, shape, t, f"[{i}]")
        return self.flatten(f)

    def _matches(self, f, shape: torch.Size) -> bool:
        return isinstance(f, Tensor) and f.shape == shape and f.dtype == self.dtype and f.device == self.device

    def _refuse(self, f, shape: torch.Size, t, where: str) -> None:
        """Raise the error that says how f, returned at time t, differs from the state's piece y0`where`."""
        at = f" (at t={float(t):.10g})"
        if not isinstance(f, Tensor):
            raise TypeError(f"func must return a tensor like y0{where}, got {_describe(f)}{at}")
        if f.shape != shape:
            raise ValueError(f"func returned shape {tuple(f.shape)} but y0{where} has shape {tuple(shape)}{at}")
        if f.dtype != self.dtype:
            raise TypeError(f"func returned dtype {f.dtype} but y0{where} has dtype {self.dtype}{at}")
        raise ValueError(f"func returned a tensor on {f.device} but y0{where} is on {self.device}{at}")


def _describe(x) -> str:
    """A value's type, and its length where it is a tuple or list."""
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}"
    return type(x).__name__
