"""The baseline: torchdiffeq's continuous adjoint (Chen et al., "Neural Ordinary Differential
Equations", NeurIPS 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..solve import FIXED_STEP_METHODS
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


class Adjoint:
    """Delegates to `torchdiffeq.odeint_adjoint` with the same method, tolerances and step options.

    The backward pass solves the adjoint ODE backwards in time with its own adaptive steps; its
    gradient is that of the continuous problem, not of the discrete forward solution, and it
    degrades where reverse-time integration is ill-conditioned. The solution itself is
    torchdiffeq's (its own step-size controller, and the 3/8-rule variant for "rk4"). Step counts
    are not reported (None); function evaluations are, forward and backward.
    """

    name = "adjoint"
    needs_params = True

    def solve(self, problem: Problem) -> Tensor:
        from torchdiffeq import odeint_adjoint

        p, c = problem, problem.control
        method = p.stepper.name
        if isinstance(c.rtol, Tensor) or isinstance(c.atol, Tensor):
            raise ValueError(
                "gradient='adjoint' runs torchdiffeq's adjoint, which takes scalar rtol and atol only; "
                "use gradient='aca' or 'direct' for per-component tolerances"
            )
        if method not in TORCHDIFFEQ_METHODS:
            raise ValueError(
                f"gradient='adjoint' runs torchdiffeq, which has no method {method!r}; "
                f"use one of {sorted(TORCHDIFFEQ_METHODS)} or another gradient method"
            )
        if c.step_size is None:
            options = {"max_num_steps": c.max_steps, "max_step": c.max_step, "safety": c.controller.safety,
                       "ifactor": c.controller.max_factor, "dfactor": c.controller.min_factor}
            if c.first_step is not None:
                options["first_step"] = c.first_step
            if p.land:
                options["step_t"] = p.times.detach()
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
            options = {"step_size": c.step_size, "interp": "cubic"}
        p.stats.accepted = p.stats.rejected = p.stats.accepted_backward = p.stats.rejected_backward = None
        ys = odeint_adjoint(
            p.func, p.y0, p.times, rtol=c.rtol, atol=c.atol, method=TORCHDIFFEQ_METHODS[method],
            options=options, adjoint_params=p.params,
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
