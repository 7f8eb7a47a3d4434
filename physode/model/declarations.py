"""What a System's class body declares: states, unknown physical parameters with their
constraint transforms, known constants, and learned terms."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn


class State:
    """A named state variable of a System: one tensor of `shape` per series.

    `dims` name the state's own dimensions in datasets (default: <name>_0, <name>_1, ...).
    """

    def __init__(self, shape: Sequence[int] = (), *, dims: Sequence[str] | None = None, units: str | None = None,
                 description: str = ""):
        self.shape = tuple(int(n) for n in shape)
        if dims is not None and len(dims) != len(self.shape):
            raise ValueError(f"State dims {tuple(dims)} must name each of the {len(self.shape)} dimensions of shape {self.shape}")
        self._dims, self.units, self.description = None if dims is None else tuple(dims), units, description

    def __set_name__(self, owner, name: str) -> None:
        self.name = name
        self.dims = self._dims or tuple(f"{name}_{i}" for i in range(len(self.shape)))

    def __get__(self, instance, owner):
        return self


class Parameter:
    """An unknown physical parameter. The optimiser works on an unconstrained value u; the physical
    value is u (no constraint), exp(u) (`positive=True`) or lo + (hi - lo) sigmoid(u)
    (`bounds=(lo, hi)`). Reading `system.<name>` gives the physical value; assigning one sets u.
    `fixed=True` keeps it out of fitting.
    """

    def __init__(self, value, *, shape: Sequence[int] | None = None, positive: bool = False,
                 bounds: tuple[float, float] | None = None, units: str | None = None, fixed: bool = False,
                 description: str = ""):
        if positive and bounds is not None:
            raise ValueError("a Parameter is either positive or bounded, not both")
        if bounds is not None:
            lo, hi = (float(b) for b in bounds)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"Parameter bounds must be finite with lo < hi, got {bounds!r}")
            bounds = (lo, hi)
        value = torch.as_tensor(np.asarray(value, dtype=float), dtype=torch.float64)
        self.value = value if shape is None else torch.broadcast_to(value, tuple(shape)).clone()
        self.positive, self.bounds, self.units, self.fixed, self.description = positive, bounds, units, fixed, description
        self._check(self.value, "initial value")

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.raw_name = name, f"{name}_unconstrained"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    def _check(self, value: Tensor, what: str) -> None:
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"Parameter {what} must be finite, got {value.tolist()}")
        if self.positive and not bool((value > 0).all()):
            raise ValueError(f"positive Parameter {what} must be > 0, got {value.tolist()}")
        if self.bounds is not None and not bool(((value > self.bounds[0]) & (value < self.bounds[1])).all()):
            raise ValueError(f"Parameter {what} must lie strictly inside {self.bounds}, got {value.tolist()}")

    def to_physical(self, u: Tensor) -> Tensor:
        if self.positive:
            return u.exp()
        if self.bounds is not None:
            lo, hi = self.bounds
            return lo + (hi - lo) * torch.sigmoid(u)
        return u

    def to_unconstrained(self, value: Tensor) -> Tensor:
        if self.positive:
            return value.log()
        if self.bounds is not None:
            lo, hi = self.bounds
            return torch.logit((value - lo) / (hi - lo))
        return value

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return self.to_physical(instance._parameters[self.raw_name])

    def __set__(self, instance, value) -> None:
        raw = instance._parameters[self.raw_name]
        value = torch.as_tensor(np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value, dtype=float),
                                dtype=torch.float64)
        try:
            value = torch.broadcast_to(value, raw.shape)
        except RuntimeError as error:
            raise ValueError(f"{self.name} has shape {tuple(raw.shape)}; cannot set it to shape {tuple(value.shape)}") from error
        self._check(value, f"{self.name}")
        with torch.no_grad():
            raw.copy_(self.to_unconstrained(value).to(raw.dtype))


class Constant:
    """A known constant of the physics (a buffer: it moves with the system, it is not fitted)."""

    def __init__(self, value, *, units: str | None = None, description: str = ""):
        self.value = torch.as_tensor(np.asarray(value, dtype=float), dtype=torch.float64)
        self.units, self.description = units, description

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner):
        return self if instance is None else _registered(instance, "_buffers", self.name)

    def __set__(self, instance, value) -> None:
        buffer = instance._buffers[self.name]
        with torch.no_grad():
            buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype, device=buffer.device).broadcast_to(buffer.shape))


class Learned:
    """A learned term: any nn.Module, built per System instance.

    Give a module (each instance gets its own deep copy) or a factory and its arguments, as in
    Learned(MLP, 2, 1, hidden=(32, 32)).
    """

    def __init__(self, module: nn.Module | Callable[..., nn.Module], *args, **kwargs):
        if not (isinstance(module, nn.Module) or callable(module)):
            raise TypeError(f"Learned takes an nn.Module or a factory of one, got {type(module).__name__}")
        self.module, self.args, self.kwargs = module, args, kwargs

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def build(self) -> nn.Module:
        module = copy.deepcopy(self.module) if isinstance(self.module, nn.Module) else self.module(*self.args, **self.kwargs)
        if not isinstance(module, nn.Module):
            raise TypeError(f"Learned {self.name!r}: the factory returned {type(module).__name__}, not an nn.Module")
        return module

    def __get__(self, instance, owner):
        return self if instance is None else _registered(instance, "_modules", self.name)


def _registered(instance, registry: str, name: str):
    """An entry of an nn.Module registry; AttributeError (as for a missing attribute) until it is set."""
    try:
        return instance.__dict__[registry][name]
    except KeyError:
        raise AttributeError(f"{type(instance).__name__}.{name} is not set up yet") from None
