"""The Adaptive Checkpoint Adjoint (Zhuang et al., "Adaptive Checkpoint Adjoint Method for Gradient
Estimation in Neural ODE", ICML 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..solve import integrate
from .base import Problem


class ACA:
    """Forward without a graph, keeping the accepted steps (t_i, h_i) and states z_i; backward walks
    the steps in reverse, recomputes each from z_i with a local graph and makes one vector-Jacobian
    product per step.

    The same discrete computation as `direct`, so the same gradient to round-off, in memory
    O(steps x state) plus one step's graph. Outputs inside a step get their gradient through that
    step's interpolant. With a fixed-step method this is ANODE's checkpointing (Gholami et al.,
    IJCAI 2019). No double backward.
    """

    name = "aca"
    needs_params = True

    def solve(self, problem: Problem) -> Tensor:
        p = problem
        if not torch.is_grad_enabled():
            outputs, _ = integrate(p.func, p.rk, p.y0, p.f0, p.clock(p.times), p.control, p.stats)
            return torch.stack(outputs)
        return _ACAFunction.apply(p, p.y0, p.times, *p.params)


class _ACAFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, problem: Problem, y0: Tensor, times: Tensor, *params: Tensor) -> Tensor:
        p = problem
        keep = any(ctx.needs_input_grad)
        outputs, grid = integrate(p.func, p.rk, y0, p.f0.detach(), p.clock(times), p.control, p.stats, keep_states=keep)
        ctx.problem, ctx.grid = problem, grid
        ctx.save_for_backward(times)
        return torch.stack(outputs)

    @staticmethod
    def backward(ctx, grad_outputs: Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "gradient='aca' does not support double backward (create_graph=True); use gradient='direct'"
            )
        problem, grid = ctx.problem, ctx.grid
        (times,) = ctx.saved_tensors
        need_times = ctx.needs_input_grad[2]
        params = problem.params
        times = times.detach().requires_grad_(need_times)
        clock = problem.clock(times)
        inputs = (*params, times) if need_times else params
        totals = [None] * len(inputs)
        adjoint = torch.zeros_like(grad_outputs[0])
        func, rk = problem.func, problem.rk
        func.backward = True
        try:
            for i in reversed(range(len(grid))):
                if grid.ends_segment(i):
                    adjoint = adjoint + grad_outputs[clock.anchor_outputs[grid.segment[i] + 1]]
                inside = grid.interior[i]
                with torch.enable_grad():
                    z = grid.states[i].detach().requires_grad_(True)
                    span = clock.span(grid.segment[i], grid.start[i], grid.end[i])
                    has_inside = inside.stop > inside.start
                    y1, ks = rk.step(func, span, z, full=has_inside)
                    outs, cotangents = [y1], [adjoint]
                    if has_inside:
                        f1 = rk.end_derivative(func, span, y1, ks) if rk.interpolant_needs_end_derivative else None
                        outs.append(rk.interpolate(clock.theta(inside, span), z, y1, span.h, ks, f1))
                        cotangents.append(grad_outputs[inside])
                    # retain_graph: func may use a graph built outside it from params, shared by all steps
                    grads = torch.autograd.grad(outs, (z, *inputs), cotangents, allow_unused=True, retain_graph=True)
                adjoint = grads[0]
                totals = [_add(a, g) for a, g in zip(totals, grads[1:])]
                problem.stats.accepted_backward += 1
        finally:
            func.backward = False
        adjoint = adjoint + grad_outputs[0]
        grad_params = [_zeros_if_none(g, p) for g, p in zip(totals, params)]
        grad_times = _zeros_if_none(totals[-1], times) if need_times else None
        return None, adjoint, grad_times, *grad_params


def _add(total: Tensor | None, g: Tensor | None) -> Tensor | None:
    if g is None:
        return total
    return g if total is None else total + g


def _zeros_if_none(g: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if g is None else g
