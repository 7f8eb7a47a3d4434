"""The baseline: torchdiffeq's continuous adjoint (Chen et al., "Neural Ordinary Differential
Equations", NeurIPS 2018)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
import torchdiffeq
from torchdiffeq import odeint_adjoint

from ..solve import (
    FIXED_STEP_METHODS, Callbacks, ConstantStep, GridSteps, PIController, SolverError, Stepper, resolvable_rtol,
)
from .base import Problem

_TORCHDIFFEQ = str(Path(torchdiffeq.__file__).resolve().parent)

# physode method name -> torchdiffeq's name for the same tableau.
TORCHDIFFEQ_METHODS = {
    "euler": "euler",
    "midpoint": "midpoint",
    "rk4": "rk4",
    "rk38": "rk4",
    "heun2": "heun2",
    "heun3": "heun3",
    "heun_euler": "adaptive_heun",
    "fehlberg2": "fehlberg2",
    "bosh3": "bosh3",
    "dopri5": "dopri5",
}
ADAPTIVE_METHODS = sorted(set(TORCHDIFFEQ_METHODS) - set(FIXED_STEP_METHODS))


@dataclass(frozen=True)
class Adjoint:
    """Delegates to `torchdiffeq.odeint_adjoint` with the same method, tolerances and step options.

    The backward pass solves the adjoint ODE backwards in time with its own adaptive steps, at
    `rtol`, `atol`, by `method` and with `options` (torchdiffeq's adjoint_rtol, adjoint_atol,
    adjoint_method, adjoint_options; None: the forward pass's). With `seminorm` its step-size
    control leaves the parameters' adjoint out of the error norm (Kidger, Chen & Lyons, "'Hey,
    that's not an ODE': Faster ODE Adjoints via Seminorms", ICML 2021), which saves backward steps
    and keeps the gradient's accuracy. The func's `callback_*_adjoint` callbacks are called on the
    backward pass, as torchdiffeq calls them. Its gradient is that of the continuous problem, not of the
    discrete forward solution, and it degrades where reverse-time integration is ill-conditioned.
    The solution itself is torchdiffeq's (its own step-size controller, and the 3/8-rule variant
    for "rk4"). Step counts are not reported (None); function evaluations are, forward and backward.
    """

    rtol: float | None = None
    atol: float | None = None
    method: str | None = None
    options: dict | None = None
    seminorm: bool = False

    name: ClassVar[str] = "adjoint"
    needs_params: ClassVar[bool] = True

    def __post_init__(self):
        for key in ("rtol", "atol"):
            value = getattr(self, key)
            if value is not None and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
                raise TypeError(f"Adjoint {key} must be a positive number or None, got {type(value).__name__}")
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"Adjoint {key} must be a positive number or None, got {value!r}")
        if self.method is not None and self.method not in ADAPTIVE_METHODS:
            raise ValueError(f"Adjoint method must be one of {ADAPTIVE_METHODS} or None, got {self.method!r}")
        if self.options is not None and not isinstance(self.options, dict):
            raise TypeError(f"Adjoint options must be a dict of torchdiffeq's options or None, got {self.options!r}")
        if not isinstance(self.seminorm, bool):
            raise TypeError(f"Adjoint seminorm must be True or False, got {self.seminorm!r}")
        if self.seminorm and "norm" in (self.options or {}):
            raise ValueError("Adjoint seminorm=True sets the backward norm: leave 'norm' out of Adjoint options")

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
        stops = sorted({*p.stops.times, *(p.times.detach().tolist() if p.land else ())} - set(p.stops.jumps))
        if isinstance(c, PIController):
            options = {"max_num_steps": p.max_steps, "max_step": c.max_step, "min_step": c.min_step, "safety": c.safety,
                       "ifactor": c.max_factor, "dfactor": c.min_factor, "norm": p.tolerance.norm}
            if c.first_step is not None:
                options["first_step"] = c.first_step
            options.update({key: torch.tensor(value, dtype=p.times.dtype) for key, value in
                            (("step_t", stops), ("jump_t", p.stops.jumps)) if value})
            backward_options = {key: value for key, value in options.items() if key != "norm"}
        elif not isinstance(c, ConstantStep):
            raise ValueError(f"gradient='adjoint' runs torchdiffeq's own step-size control, which takes the settings of a "
                             f"PIController or a ConstantStep, not {c!r}")
        elif method not in FIXED_STEP_METHODS:
            raise ValueError(
                f"gradient='adjoint' runs torchdiffeq, which takes fixed steps only with {FIXED_STEP_METHODS}, "
                f"not {method!r}"
            )
        elif p.land and not isinstance(c, GridSteps):
            raise ValueError(
                "options['land_on_outputs'] with a step size is not available with gradient='adjoint' "
                "(torchdiffeq's fixed grid does not land on output times); use gradient='aca' or 'direct'"
            )
        else:
            options = {"interp": "cubic", "perturb": p.stops.every_node}
            if not isinstance(c, GridSteps):
                options["step_size"] = c.h
            elif not p.land:
                grid = torch.tensor([p.times[0].item(), *stops, p.times[-1].item()], dtype=p.times.dtype)
                options["grid_constructor"] = lambda func, y0, t: grid.to(t)
            backward_options = {"max_num_steps": p.max_steps}
        p.stats.accepted = p.stats.rejected = p.stats.accepted_backward = p.stats.rejected_backward = None
        adjoint_options = None if self.method is None and self.options is None else dict(backward_options)
        if self.options is not None:
            adjoint_options.update(self.options)
        if self.seminorm:
            adjoint_options = {**(adjoint_options or {}), "norm": "seminorm"}
        adjoint_rtol = None if self.rtol is None else resolvable_rtol(self.rtol, p.y0.dtype, "Adjoint rtol")
        adjoint_method = None if self.method is None else TORCHDIFFEQ_METHODS[self.method]

        def run(y0: Tensor, times: Tensor) -> Tensor:
            return odeint_adjoint(
                _WithCallbacks(p.func, p.callbacks), y0, times, rtol=p.tolerance.rtol, atol=p.tolerance.atol,
                method=TORCHDIFFEQ_METHODS[method], options=options, adjoint_params=p.params, adjoint_rtol=adjoint_rtol,
                adjoint_atol=self.atol, adjoint_method=adjoint_method, adjoint_options=adjoint_options,
            )

        return _Boundary.apply(run, p.func, p.y0, p.times, *p.params)


class _WithCallbacks:
    """func with the user's step callbacks as attributes, where torchdiffeq looks for them."""

    def __init__(self, func, callbacks: Callbacks | None):
        self.func = func
        for name, callback in ({} if callbacks is None else callbacks.by_name()).items():
            setattr(self, name, callback)

    def __call__(self, t, y):
        return self.func(t, y)


class _Boundary(torch.autograd.Function):
    """torchdiffeq's adjoint, run(y0, times), as one node whose forward and backward run its passes
    inside them: torchdiffeq's failures, which it asserts, are raised as SolverError in either
    pass, and the function counter switches to the backward pass as it starts."""

    @staticmethod
    def forward(ctx, run, func, y0: Tensor, times: Tensor, *params: Tensor) -> Tensor:
        inputs = tuple(x.detach().requires_grad_(x.requires_grad) for x in (y0, times))
        with torch.enable_grad():
            ys = _stopped("forward", run, *inputs)
        ctx.func, ctx.ys, ctx.inputs = func, ys, (*inputs, *params)
        return ys.detach()

    @staticmethod
    def backward(ctx, grad: Tensor):
        ctx.func.backward = True
        wanted = [x for x in ctx.inputs if x.requires_grad]
        grads = iter(_stopped("backward", torch.autograd.grad, ctx.ys, wanted, grad, retain_graph=True,
                              create_graph=torch.is_grad_enabled(), allow_unused=True) if wanted else ())
        return (None, None, *(next(grads) if x.requires_grad else None for x in ctx.inputs))


def _stopped(which: str, call, *args, **kwargs):
    """call(*args, **kwargs), with an assertion that fails inside torchdiffeq raised as SolverError
    (torchdiffeq asserts its step count, step size and state; it does not say the time)."""
    try:
        return call(*args, **kwargs)
    except AssertionError as error:
        frame = error.__traceback__
        while frame.tb_next is not None:
            frame = frame.tb_next
        if not frame.tb_frame.f_code.co_filename.startswith(_TORCHDIFFEQ):
            raise
        reason = str(error).split("\n")[0][:120]
        raise SolverError(f"torchdiffeq's solver stopped in the {which} pass of gradient='adjoint': {reason}", None,
                          None, hint="raise options['max_steps'], change rtol/atol (or Adjoint's), or use "
                                     "gradient='aca'") from error
