"""Forward-mode differentiation of the discrete solution: the tangents of the outputs along given
directions of y0 and of the parameters, pushed through the accepted steps.

The solve first runs without derivatives and records its accepted steps; a forward sweep then
retakes each step on the state stacked with its P tangents, shape (1 + P, *y.shape). Everything a
step does besides evaluating func is linear in the state and its stages (the stage sums, the
error estimate, the dense output), so it acts on the stack as it stands; each evaluation of func
returns f(t, y) stacked with its directional derivatives J_y f dY + J_p f dp, from
`torch.func.jvp` vmapped over the directions. Since the steps are fixed (the step-size search is
not differentiated), the tangents are exactly the derivatives of the discrete solution that
`direct` differentiates in reverse, to round-off: the variational (sensitivity) equation
integrated on the same steps by the same method, with which Runge-Kutta methods commute (Hairer,
Norsett & Wanner, Solving ODEs I, II.6; the internal differentiation of Bock, 1981). A Jacobian
of many outputs with respect to P unknowns costs one sweep, where reverse mode needs one
backward pass per output entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.func import jvp, vmap

from ..solve import Outputs
from .base import Problem
from .sweep import replay_step


class Substitution:
    """func(t, y), whose module parameters can be replaced by other tensors (dual ones, in a jvp).

    func is an nn.Module, or a callable bound to one (a method); `parameters` and `buffers` map
    the names of that module's parameters and floating-point buffers, as in `named_parameters()`
    and `named_buffers()`, to them. Within `using(values)` the module's slots hold `values` (as
    torch.func.functional_call does, without its per-call bookkeeping), and are restored on
    leaving.
    """

    def __init__(self, func: Callable):
        module = func if isinstance(func, nn.Module) else getattr(func, "__self__", None)
        if not isinstance(module, nn.Module):
            raise TypeError("the tangents of parameters need func to be an nn.Module or a bound method of one, "
                            f"got {type(func).__name__}")
        self.func = func
        self.parameters = dict(module.named_parameters())
        self.buffers = {name: b for name, b in module.named_buffers() if b.is_floating_point()}
        self._slots = {name: _owner(module, name) for name in (*self.parameters, *self.buffers)}

    @contextlib.contextmanager
    def using(self, values: Mapping[str, Tensor]) -> Iterator[None]:
        """Within the block, func sees `values` in place of the parameters they name."""
        saved = []
        try:
            for name, value in values.items():
                owner, attribute = self._slots[name]
                slots = owner._parameters if name in self.parameters else owner._buffers
                saved.append((slots, attribute, slots[attribute]))
                slots[attribute] = value
            yield
        finally:
            for slots, attribute, original in reversed(saved):
                slots[attribute] = original

    def __call__(self, t: Tensor, y):
        return self.func(t, y)


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The submodule holding the parameter `name` (dotted, as named_parameters gives it), and its own name there."""
    path, _, attribute = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attribute


class _Linearised:
    """func on a state stacked with its tangents (1 + P, *shape) -> f stacked with its derivatives
    along the P directions, the parameters' directions `params_dot` included.

    The module's floating-point buffers enter the jvp too, with zero tangents: an operation between
    a tensor with a tangent and one without goes through a slow path of torch's forward-mode AD (a
    zero tangent that is materialised does not).
    """

    def __init__(self, func: Callable, substitution: Substitution | None, params_dot: Mapping[str, Tensor]):
        self.func, self.substitution = func, substitution
        buffers = substitution.buffers if substitution is not None else {}
        self.names = [*params_dot, *buffers]
        self.values = [substitution.parameters[name].detach() for name in params_dot] + list(buffers.values())
        self.dots = [params_dot[name] for name in params_dot]
        self.zeros = [torch.zeros_like(b) for b in buffers.values()]

    def _at(self, t: Tensor, y: Tensor, *values: Tensor) -> Tensor:
        if not self.names:
            return self.func(t, y)
        with self.substitution.using(dict(zip(self.names, values))):
            return self.func(t, y)

    def __call__(self, t: Tensor, stacked: Tensor) -> Tensor:
        y, tangents = stacked[0], stacked[1:]

        def directional(dy, *dp):
            return jvp(lambda z, *v: self._at(t, z, *v), (y, *self.values), (dy, *dp, *self.zeros))

        value, derivative = vmap(directional)(tangents, *self.dots)
        return torch.cat([value[:1], derivative])


def tangent_sweep(
    problem: Problem, substitution: Substitution | None, y0_dot: Tensor | None, params_dot: Mapping[str, Tensor],
) -> tuple[Tensor, Tensor]:
    """The outputs (len(times), *y0.shape) and their tangents (P, len(times), *y0.shape) along P
    directions: `y0_dot` (P, *y0.shape) or None (zero), and `params_dot`, parameter name ->
    (P, *shape) (the parameters not named are constant). At least one direction must be given."""
    with torch.no_grad():
        _, record = problem.integrate(problem.y0, problem.f0, problem.times)
    clock = problem.clock(problem.times.detach())
    count = (y0_dot if y0_dot is not None else next(iter(params_dot.values()))).shape[0]
    y0 = problem.y0.detach()
    if y0_dot is None:
        y0_dot = y0.new_zeros(count, *y0.shape)
    func = _Linearised(problem.func, substitution, params_dot)
    z = torch.cat([y0.unsqueeze(0), y0_dot])
    outputs = Outputs(len(problem.times), z)
    v = None
    if problem.stepper.state_carry(problem.f0) is not None:
        v = func(clock.times[clock.anchor_outputs[0]], z)
    outputs.put(clock.anchor_outputs[0], z)
    for i in range(len(record)):
        outs = replay_step(problem, record, clock, i, func, z, v)
        z = outs[0]
        if v is not None:
            v = outs[1]
        inside = record.interior(i)
        if inside.stop > inside.start:
            outputs.put(inside, outs[-1])
        output = clock.anchor_outputs[record.segment(i) + 1] if record.ends_segment(i) else None
        if output is not None:
            outputs.put(output, z)
    stacked = outputs.stacked().transpose(0, 1)  # (1 + P, len(times), *y0.shape)
    return stacked[0], stacked[1:]
