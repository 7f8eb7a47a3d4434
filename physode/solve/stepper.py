"""What the loop steps with, and the methods by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from .alf import AsynchronousLeapfrog
from .clock import Span
from .rk import RungeKutta
from .tableaus import TABLEAUS


class Stepper(Protocol):
    """One integration method. `step` returns y1 and the stage list ks; when `carries`, ks[-1] is
    the next step's first stage (an FSAL stage, or ALF's velocity, which is state: `carry_is_state`).
    `adaptive` methods have `error(h, ks)`, an error estimate ~ h^error_exponent_order."""

    name: str
    order: int
    adaptive: bool
    error_exponent_order: int
    carries: bool
    carry_is_state: bool
    has_dense_output: bool
    interpolant_needs_end_derivative: bool
    controller_defaults: dict[str, float]

    def step(self, func: Callable, span: Span, y: Tensor, k1: Tensor | None = None, full: bool = True) -> tuple[Tensor, list[Tensor]]: ...

    def error(self, h: Tensor, ks: list[Tensor]) -> Tensor: ...


STEPPERS: dict[str, type] = {**dict.fromkeys(TABLEAUS, RungeKutta), AsynchronousLeapfrog.name: AsynchronousLeapfrog}
METHODS = sorted(STEPPERS)
FIXED_STEP_METHODS = sorted(name for name, tab in TABLEAUS.items() if not tab.adaptive)


def make_stepper(method: str, dtype: torch.dtype, device: torch.device, eta: float = 1.0) -> Stepper:
    if method == AsynchronousLeapfrog.name:
        return AsynchronousLeapfrog(eta)
    return RungeKutta(TABLEAUS[method], dtype, device)
