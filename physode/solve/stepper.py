"""What the loop and the reverse sweep step with, and the registry of methods by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import torch
from torch import Tensor

from .adams import ADAMS_METHODS, Adams
from .alf import AsynchronousLeapfrog
from .clock import Span
from .control import Controller, IController
from .rk import RungeKutta
from .tableaus import TABLEAUS


class Stepper(Protocol):
    """One integration method.

    `step` takes y at span.t0 and the carry, and returns y1 and the list of stages ks; `carry(ks)`
    is what the next step takes: an FSAL stage f(t1, y1) (a cache that could be recomputed from
    y1), ALF's velocity (part of the state, so `state_carry` returns it and it is stored and
    differentiated with y), or None. With full=False a step computes only what y1 and the carry
    need. `error(h, ks, norm)` is the norm of a local error estimate ~ h^error_order (for `adaptive`
    methods), with `norm` the weighted norm of an error vector.
    Methods `has_dense_output` interpolate inside a step; the others land on every output time.
    """

    name: str
    error_order: int
    adaptive: bool
    has_dense_output: bool

    def step(
        self, func: Callable, span: Span, y: Tensor, carry: Tensor | None = None, full: bool = True
    ) -> tuple[Tensor, list[Tensor]]: ...

    def carry(self, ks: list[Tensor]) -> Tensor | None: ...

    def state_carry(self, carry: Tensor | None) -> Tensor | None: ...

    def error(self, h: Tensor, ks: list[Tensor], norm: Callable[[Tensor], Tensor]) -> Tensor: ...


class DenseOutput(Stepper, Protocol):
    """A stepper with a continuous extension, used only where an output time falls inside a step.

    `interpolant_stages(func, span, y0, y1, ks)` evaluates what the extension needs beyond the
    stages ks of a full step (f(t1, y1) for a cubic Hermite interpolant, DOP853's three extra
    stages, or nothing); `interpolate(theta, y0, h, stages)` gives the states at t0 + theta h for
    theta in (0, 1] from stages = ks + those. `carry(stages)` is then f(t1, y1) where they
    include it, so that an end derivative evaluated to interpolate also starts the next step.
    """

    def interpolant_stages(
        self, func: Callable, span: Span, y0: Tensor, y1: Tensor, ks: list[Tensor]
    ) -> list[Tensor]: ...

    def interpolate(self, theta: Tensor, y0: Tensor, h: Tensor, stages: list[Tensor]) -> Tensor: ...


class Reversible(Stepper, Protocol):
    """A stepper with an exact algebraic inverse: `inverse` maps (y1, carry1) at span.t1 back to
    (y, carry) at span.t0. A reconstruction error grows by up to `inverse_growth` per inverse
    step; `inverse_hint` says how to lower that growth."""

    inverse_growth: float
    inverse_hint: str

    def inverse(self, func: Callable, span: Span, y1: Tensor, carry1: Tensor) -> tuple[Tensor, Tensor]: ...


@dataclass(frozen=True)
class Method:
    """A method by name: `build(dtype, device, **options)` makes its stepper; `controller` is its
    default step-size controller (None: a fixed-step method, which needs a step size); `options`
    are its own options, each with what it is."""

    build: Callable[..., Stepper]
    controller: Controller | None
    options: Mapping[str, str] = field(default_factory=dict)


def _leapfrog(dtype: torch.dtype, device: torch.device, eta: float = 1.0) -> AsynchronousLeapfrog:
    return AsynchronousLeapfrog(eta)


# The classical integral controller: with dopri5 it takes torchdiffeq's and diffrax's steps, and on
# neural ODEs and short solves fewer than a PI controller at the same tolerance (docs/benchmarks.md).
# dopri8's is that of Hairer's DOP853 code, which may shorten the step after an accepted one: 4%
# fewer evaluations than without, at the same error (a Brusselator at rtol 1e-10). So may alf's
# (torchdiffeq has no such method to match).
_SHORTENING = IController(accepted_min_factor=None)
_CONTROLLERS = {"dopri8": _SHORTENING}
_RUNGE_KUTTA = {name: Method(partial(RungeKutta, tableau), _CONTROLLERS.get(name, IController()) if tableau.adaptive
                             else None) for name, tableau in TABLEAUS.items()}
REGISTRY: dict[str, Method] = {
    **_RUNGE_KUTTA,
    "adaptive_heun": _RUNGE_KUTTA["heun_euler"],  # torchdiffeq's name for it
    AsynchronousLeapfrog.name: Method(_leapfrog, _SHORTENING, {"eta": "the damping"}),
    **{name: Method(partial(Adams, name), None, options) for name, options in ADAMS_METHODS.items()},
}
METHODS = sorted(REGISTRY)
FIXED_STEP_METHODS = sorted(name for name, method in REGISTRY.items() if method.controller is None)


def make_stepper(method: str, dtype: torch.dtype, device: torch.device, **options) -> Stepper:
    return REGISTRY[method].build(dtype, device, **options)
