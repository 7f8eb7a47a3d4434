"""The baseline: torchdiffeq's continuous adjoint (Chen et al., "Neural Ordinary Differential
Equations", NeurIPS 2018)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torchdiffeq import odeint_adjoint

from ..solve import FIXED_STEP_METHODS, ConstantStep, PIController, Stepper
from .base import Problem

# physode method name -> torchdiffeq's name for the same tableau.
TORCHDIFFEQ_METHODS = {
    "euler": "euler",
    "midpoint": "midpoint",
    "rk4": "rk4",
    "heun_euler": "adaptive_heun",
    "bosh3": "bosh3",
    "dopri5": "dopri5",
}
ADAPTIVE_METHODS = sorted(set(TORCHDIFFEQ_METHODS) - set(FIXED_STEP_METHODS))


@dataclass(frozen=True)
class Adjoint:
    """Delegates to `torchdiffeq.odeint_adjoint` with the same method, tolerances and step options.

    The backward pass solves the adjoint ODE backwards in time with its own adaptive steps, at
    `rtol`, `atol` and by `method` (torchdiffeq's adjoint_rtol, adjoint_atol, adjoint_method;
    None: the forward pass's). Its gradient is that of the continuous problem, not of the
    discrete forward solution, and it degrades where reverse-time integration is ill-conditioned.
    The solution itself is torchdiffeq's (its own step-size controller, and the 3/8-rule variant
    for "rk4"). Step counts are not reported (None); function evaluations are, forward and backward.
    """

    rtol: float | None = None
    atol: float | None = None
    method: str | None = None

    name: ClassVar[str] = "adjoint"
    needs_params: ClassVar[bool] = True

    def __post_init__(self):
        for key in ("rtol", "atol"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                                          and math.isfinite(value) and value > 0):
                raise ValueError(f"Adjoint {key} must be a positive number or None, got {value!r}")
        if self.method is not None and self.method not in ADAPTIVE_METHODS:
            raise ValueError(f"Adjoint method must be one of {ADAPTIVE_METHODS} or None, got {self.method!r}")

    def check(self, stepper: Stepper) -> None:
        """Only the methods torchdiffeq has."""
        if stepper.name not in TORCHDIFFEQ_METHODS:
            raise ValueError(
                f"gradient='adjoint' runs torchdiffeq, which has no method {stepper.name!r}; "
                f"use one of {sorted(TORCHDIFFEQ_METHODS)} or another gradient method"
            )

    def solve(self, problem: Problem) -> Tensor:
        p, c = problem, problem.controller
        method = p.stepper.name
        if isinstance(p.tolerance.rtol, Tensor) or isinstance(p.tolerance.atol, Tensor):
            raise ValueError(
                "gradient='adjoint' runs torchdiffeq's adjoint, which takes scalar rtol and atol only; "
                "use gradient='aca' or 'direct' for per-component tolerances"
            )
        if isinstance(c, PIController):
            options = {"max_num_steps": p.max_steps, "max_step": c.max_step, "safety": c.safety,
                       "ifactor": c.max_factor, "dfactor": c.min_factor}
            if c.first_step is not None:
                options["first_step"] = c.first_step
            if p.land:
                options["step_t"] = p.times.detach()
            backward_options = options
        elif not isinstance(c, ConstantStep):
            raise ValueError(f"gradient='adjoint' runs torchdiffeq's own step-size control, which takes the settings of a "
                             f"PIController or a ConstantStep, not {c!r}")
        elif method not in FIXED_STEP_METHODS:
            raise ValueError(
                f"gradient='adjoint' runs torchdiffeq, which takes fixed steps only with {FIXED_STEP_METHODS}, "
                f"not {method!r}"
            )
        elif p.land:
            raise ValueError(
                "options['land_on_outputs'] with a fixed-step method is not available with gradient='adjoint' "
                "(torchdiffeq's fixed grid does not land on output times); use gradient='aca' or 'direct'"
            )
        else:
            options = {"step_size": c.h, "interp": "cubic"}
            backward_options = {"max_num_steps": p.max_steps}
        p.stats.accepted = p.stats.rejected = p.stats.accepted_backward = p.stats.rejected_backward = None
        ys = odeint_adjoint(
            p.func, p.y0, p.times, rtol=p.tolerance.rtol, atol=p.tolerance.atol, method=TORCHDIFFEQ_METHODS[method],
            options=options, adjoint_params=p.params, adjoint_rtol=self.rtol, adjoint_atol=self.atol,
            adjoint_method=None if self.method is None else TORCHDIFFEQ_METHODS[self.method],
            adjoint_options=None if self.method is None else dict(backward_options),
        )
        return _EnterBackward.apply(ys, p.func)


class _EnterBackward(torch.autograd.Function):
    """Identity whose backward switches the function counter to the backward pass."""

    @staticmethod
    def forward(ctx, ys: Tensor, func) -> Tensor:
        ctx.func = func
        return ys.view_as(ys)

    @staticmethod
    def backward(ctx, grad: Tensor):
        ctx.func.backward = True
        return grad, None
