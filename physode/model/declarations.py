"""What a System's class body declares: states, unknown physical parameters with their
constraint transforms, known constants, and learned terms."""

from __future__ import annotations

import copy
import inspect
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..checks import check_flag, check_real_array


class State:
    """A named state variable of a System: one tensor of `shape` per series (an int n means (n,)).

    `dims` name the state's own dimensions in datasets (default: <name>_0, <name>_1, ...).
    """

    def __init__(self, shape: int | Sequence[int] = (), *, dims: Sequence[str] | None = None, units: str | None = None,
                 description: str = ""):
        self.shape = _shape(shape, "State shape")
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
        positive, fixed = check_flag("Parameter positive", positive), check_flag("Parameter fixed", fixed)
        if positive and bounds is not None:
            raise ValueError("a Parameter is either positive or bounded, not both")
        if bounds is not None:
            lo, hi = check_real_array("Parameter bounds", bounds, (2,), finite=True).tolist()
            if not lo < hi:
                raise ValueError(f"Parameter bounds must be (lo, hi) with lo < hi, got {bounds!r}")
            bounds = (lo, hi)
        value = as_values(value, "Parameter value")
        self.value = value if shape is None else broadcast_value(value, _shape(shape, "Parameter shape"), "Parameter value")
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
        value = broadcast_value(as_values(value, self.name), tuple(raw.shape), self.name)
        self._check(value, f"{self.name}")
        with torch.no_grad():
            raw.copy_(self.to_unconstrained(value).to(raw.dtype))


class Constant:
    """A known constant of the physics (a buffer: it moves with the system, it is not fitted)."""

    def __init__(self, value, *, units: str | None = None, description: str = ""):
        self.value = as_values(value, "Constant value")
        self.units, self.description = units, description

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner):
        return self if instance is None else _registered(instance, "_buffers", self.name)

    def __set__(self, instance, value) -> None:
        buffer = instance._buffers[self.name]
        value = broadcast_value(as_values(value, self.name), tuple(buffer.shape), self.name)
        with torch.no_grad():
            buffer.copy_(value.to(dtype=buffer.dtype, device=buffer.device))


class Learned:
    """A learned term: any nn.Module, built per System instance.

    Give a module (each instance gets its own deep copy) or a factory and its arguments, as in
    Learned(MLP, 2, 1, hidden=(32, 32)); the arguments are checked against the factory's signature
    when the class is declared.
    """

    def __init__(self, module: nn.Module | Callable[..., nn.Module], *args, **kwargs):
        if not (isinstance(module, nn.Module) or callable(module)):
            raise TypeError(f"Learned takes an nn.Module or a factory of one, got {type(module).__name__}")
        if isinstance(module, nn.Module):
            if args or kwargs:
                raise TypeError(f"Learned({type(module).__name__}(...)) takes a module without arguments; "
                                "arguments go with a factory, as in Learned(MLP, 2, 1)")
        else:
            try:
                signature = inspect.signature(module)
            except (TypeError, ValueError):
                signature = None  # a builtin without a signature: its call will say what is wrong
            if signature is not None:
                try:
                    signature.bind(*args, **kwargs)
                except TypeError as error:
                    name = getattr(module, "__name__", type(module).__name__)
                    raise TypeError(f"Learned({name}, ...): the arguments do not fit {name}{signature}: {error}; "
                                    f"pass them after the factory, as in Learned({name}, ...)") from None
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


DECLARATIONS = (State, Parameter, Constant, Learned)


def as_values(value, what: str) -> Tensor:
    """A float64 tensor of real numbers from a number, an array or a tensor; TypeError naming `what` otherwise."""
    return torch.from_numpy(check_real_array(what, value))


def broadcast_value(value: Tensor, shape: tuple[int, ...], what: str) -> Tensor:
    """`value` broadcast to `shape` (a copy); ValueError naming `what` where it cannot be."""
    try:
        return torch.broadcast_to(value, shape).clone()
    except RuntimeError:
        raise ValueError(f"{what} has shape {shape}; got a value of shape {tuple(value.shape)}") from None


def _shape(shape, what: str) -> tuple[int, ...]:
    """A shape from an int n ((n,)) or a sequence of positive ints."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or not all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in shape):
        raise TypeError(f"{what} must be an int or a sequence of ints, got {shape!r}")
    if any(n < 1 for n in shape):
        raise ValueError(f"{what} must have positive sizes, got {tuple(shape)}")
    return tuple(int(n) for n in shape)


def _registered(instance, registry: str, name: str):
    """An entry of an nn.Module registry; AttributeError (as for a missing attribute) until it is set."""
    try:
        return instance.__dict__[registry][name]
    except KeyError:
        raise AttributeError(f"{type(instance).__name__}.{name} is not set up yet") from None
