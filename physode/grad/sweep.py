"""The reverse sweep shared by `aca` and `mali`: one local recomputation and one vector-Jacobian
product per accepted step, walking the steps backwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ..solve import Clock, StepRecord
from .base import Problem
from .schedules import StoredState


class StepReplay:
    """Re-takes accepted steps without a graph: forward, or backward by the stepper's exact inverse.

    The inverse ALF step evaluates f where the recomputed forward step will evaluate it again (at
    the same point up to round-off); it keeps that evaluation's graph so that the recomputation
    can reuse it (`evaluator`), which saves one evaluation per step.
    """

    def __init__(self, problem: Problem, record: StepRecord, clock: Clock):
        self.problem, self.record, self.clock = problem, record, clock
        self._kept: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def span(self, i: int):
        return self.clock.span(self.record.segment(i), self.record.start(i), self.record.end(i))

    @torch.no_grad()
    def advance(self, i: int, state: StoredState) -> StoredState:
        stepper = self.problem.stepper
        y, v = state
        y1, ks = stepper.step(self.problem.func, self.span(i), y, v, full=False)
        return y1, stepper.state_carry(stepper.carry(ks))

    @torch.no_grad()
    def inverse(self, i: int, state: StoredState) -> StoredState:
        def evaluate_and_keep(t: Tensor, y: Tensor) -> Tensor:
            with torch.enable_grad():
                t, y = t.detach().requires_grad_(True), y.detach().requires_grad_(True)
                value = self.problem.func(t, y)
            self._kept[i] = (t, y, value)
            return value.detach()

        return self.problem.stepper.inverse(evaluate_and_keep, self.span(i), *state)

    def evaluator(self, i: int):
        """func for recomputing step i: the evaluation kept by `inverse`, if any, else func."""
        kept = self._kept.pop(i, None)
        if kept is None:
            return self.problem.func
        params = self.problem.params
        return lambda t, y: _Reuse.apply(kept, t, y, *params)


class _Reuse(torch.autograd.Function):
    """The value of an evaluation made earlier at (t, y) equal up to round-off, differentiated
    through that evaluation's own graph."""

    @staticmethod
    def forward(ctx, kept, t: Tensor, y: Tensor, *params: Tensor) -> Tensor:
        ctx.kept = kept
        ctx.save_for_backward(*params)
        return kept[2].detach()

    @staticmethod
    def backward(ctx, grad: Tensor):
        t, y, value = ctx.kept
        grads = torch.autograd.grad(value, (t, y, *ctx.saved_tensors), grad, allow_unused=True, retain_graph=True)
        return None, *grads


def replay_step(
    problem: Problem, record: StepRecord, clock: Clock, i: int, evaluate: Callable, y: Tensor, v: Tensor | None,
) -> list[Tensor]:
    """Accepted step i retaken from (y, v) with `evaluate` as func (the interpolant's own stages too,
    where it needs any): [y1, then the carry where it is state (ALF's v1), then the outputs
    interpolated inside the step where it has any]."""
    stepper = problem.stepper
    inside = record.interior(i)
    has_inside = inside.stop > inside.start
    span = clock.span(record.segment(i), record.start(i), record.end(i))
    y1, ks = stepper.step(evaluate, span, y, v, full=has_inside)
    outs = [y1] if v is None else [y1, stepper.carry(ks)]
    if has_inside:
        stages = ks + stepper.interpolant_stages(evaluate, span, y, y1, ks)
        outs.append(stepper.interpolate(clock.theta(inside, span), y, span.h, stages))
    return outs


def reverse_sweep(
    problem: Problem, record: StepRecord, clock: Clock, replay: StepReplay,
    states: Iterator[tuple[int, StoredState]], grad_outputs: Tensor, inputs: tuple[Tensor, ...],
) -> tuple[Tensor, list[Tensor | None]]:
    """Gradients of sum(grad_outputs * outputs) for y0 and for `inputs` (params, maybe times).

    Each step i is recomputed from its state with a local graph; the adjoint of its end state,
    plus the gradients of the outputs interpolated inside it, are pulled back in one
    vector-Jacobian product. Where the carry is state (ALF's velocity, an Adams history: a tensor
    or a NamedTuple of tensors) the adjoint has a part for each of its tensors too, and the
    initial carry, f0 = f(t0, z0), is differentiated last.
    """
    func = problem.func
    adjoint = torch.zeros_like(grad_outputs[0])
    adjoint_carry: tuple[Tensor | None, ...] | None = None  # None (or a None part): zero
    totals: list[Tensor | None] = [None] * len(inputs)
    first_state = None
    for i, (y, v) in states:
        output = clock.anchor_outputs[record.segment(i) + 1] if record.ends_segment(i) else None
        if output is not None:
            adjoint = adjoint + grad_outputs[output]
        inside = record.interior(i)
        if problem.callbacks is not None:
            span = replay.span(i)
            problem.callbacks.retraced(span.t0, y, span.h)
        with torch.enable_grad():
            z = y.detach().requires_grad_(True)
            carry = None if v is None else _leaves(v)
            outs = replay_step(problem, record, clock, i, replay.evaluator(i), z, carry)
            pulled, cotangents = [outs[0]], [adjoint]
            if adjoint_carry is not None:
                for out, cotangent in zip(_parts(outs[1]), adjoint_carry):
                    if cotangent is not None and out.requires_grad:  # (an Adams history's times may be constants)
                        pulled.append(out)
                        cotangents.append(cotangent)
            if inside.stop > inside.start:
                pulled.append(outs[-1])
                cotangents.append(grad_outputs[inside])
            wrt = (z, *_parts(carry))
            # retain_graph: func may use a graph built outside it from params, shared by all steps
            grads = torch.autograd.grad(pulled, (*wrt, *inputs), cotangents, allow_unused=True, retain_graph=True)
        adjoint, adjoint_carry = grads[0], (grads[1:len(wrt)] if carry is not None else None)
        totals = [_add(a, g) for a, g in zip(totals, grads[len(wrt):])]
        problem.stats.accepted_backward += 1
        first_state = y
    adjoint = adjoint + grad_outputs[0]
    if adjoint_carry is not None and adjoint_carry[0] is not None:
        with torch.enable_grad():
            z = first_state.detach().requires_grad_(True)
            v0 = func(clock.times[clock.anchor_outputs[0]], z)
            grads = torch.autograd.grad(v0, (z, *inputs), adjoint_carry[0], allow_unused=True, retain_graph=True)
        adjoint = adjoint + grads[0]
        totals = [_add(a, g) for a, g in zip(totals, grads[1:])]
    return adjoint, totals


def _parts(carry) -> tuple[Tensor, ...]:
    """The tensors of a carry that is state (a tensor or a NamedTuple of tensors)."""
    if carry is None:
        return ()
    return (carry,) if isinstance(carry, Tensor) else tuple(carry)


def _leaves(carry):
    """The carry with each of its tensors detached, as a leaf that requires grad."""
    if isinstance(carry, Tensor):
        return carry.detach().requires_grad_(True)
    return type(carry)(*(part.detach().requires_grad_(True) for part in carry))


def _add(total: Tensor | None, g: Tensor | None) -> Tensor | None:
    if g is None:
        return total
    return g if total is None else total + g


def solve_with_reverse_sweep(problem: Problem, policy, name: str) -> Tensor:
    """Solve without a graph, keeping states by `policy`; differentiate by the reverse sweep.
    `name` is the gradient method's, for its errors."""
    if not torch.is_grad_enabled():
        outputs, _ = problem.integrate(problem.y0, problem.f0, problem.times)
        return outputs
    return _ReverseSweep.apply(problem, policy, name, problem.y0, problem.times, *problem.params)


class _ReverseSweep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, problem: Problem, policy, name: str, y0: Tensor, times: Tensor, *params: Tensor) -> Tensor:
        keep = policy.keep if any(ctx.needs_input_grad) else None
        outputs, record = problem.integrate(y0, problem.f0.detach(), times, keep=keep)
        ctx.problem, ctx.policy, ctx.name, ctx.record = problem, policy, name, record
        ctx.save_for_backward(times)
        return outputs

    @staticmethod
    def backward(ctx, grad_outputs: Tensor):
        problem = ctx.problem
        if torch.is_grad_enabled():
            raise RuntimeError(
                f"gradient={ctx.name!r} does not support double backward (create_graph=True); use gradient='direct'"
            )
        (times,) = ctx.saved_tensors
        need_times = ctx.needs_input_grad[4]
        times = times.detach().requires_grad_(need_times)
        clock = problem.clock(times)
        inputs = (*problem.params, times) if need_times else problem.params
        problem.func.backward = True
        try:
            replay = StepReplay(problem, ctx.record, clock)
            states = ctx.policy.reversed_states(len(ctx.record), replay)
            grad_y0, totals = reverse_sweep(problem, ctx.record, clock, replay, states, grad_outputs, inputs)
        finally:
            problem.func.backward = False
        grads = [torch.zeros_like(x) if g is None else g for g, x in zip(totals, inputs)]
        grad_times = grads.pop() if need_times else None
        return None, None, None, grad_y0, grad_times, *grads
