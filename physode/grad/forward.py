"""Forward-mode differentiation of the discrete solution: the tangents of the outputs along given
directions of y0 and of the parameters, pushed through the accepted steps.

The solve first runs without derivatives and records its accepted steps; a forward sweep then
retakes each step with `torch.func.jvp`, vmapped over the directions. Since the steps are fixed
(the step-size search is not differentiated), the tangents are exactly the derivatives of the
discrete solution that `direct` differentiates in reverse, to round-off. This is the variational
(sensitivity) equation integrated on the same steps by the same Runge-Kutta method, which
Runge-Kutta methods commute with (Hairer, Norsett & Wanner, Solving ODEs I, II.6; the internal
differentiation of Bock, 1981). One sweep costs about P times one forward pass for P directions,
where a Jacobian by reverse mode needs one backward pass per output entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vmap

from .base import Problem
from .sweep import replay_step


class _Call(nn.Module):
    """A callable that uses `owner`'s parameters (a bound method of it), as a module of its own."""

    def __init__(self, owner: nn.Module, call: Callable):
        super().__init__()
        self.owner, self.call = owner, call

    def forward(self, t: Tensor, y):
        return self.call(t, y)


class Substitution:
    """func(t, y), whose module parameters can be replaced by other tensors (dual ones, in a jvp).

    func is an nn.Module, or a callable bound to one (a method); `names` are the parameter names
    of that module, as in `named_parameters()`.
    """

    def __init__(self, func: Callable):
        module = func if isinstance(func, nn.Module) else getattr(func, "__self__", None)
        if not isinstance(module, nn.Module):
            raise TypeError("the tangents of parameters need func to be an nn.Module or a bound method of one, "
                            f"got {type(func).__name__}")
        self.func = func
        self.holder, self.prefix = (module, "") if module is func else (_Call(module, func), "owner.")
        self.parameters = dict(module.named_parameters())
        self._values: dict[str, Tensor] | None = None

    @contextlib.contextmanager
    def using(self, values: Mapping[str, Tensor]) -> Iterator[None]:
        """Within the block, func sees `values` in place of the parameters they name."""
        self._values = {self.prefix + name: value for name, value in values.items()}
        try:
            yield
        finally:
            self._values = None

    def __call__(self, t: Tensor, y):
        if not self._values:
            return self.func(t, y)
        return functional_call(self.holder, self._values, (t, y), strict=False)


def tangent_sweep(
    problem: Problem, substitution: Substitution | None, y0_dot: Tensor | None, params_dot: Mapping[str, Tensor],
) -> tuple[Tensor, Tensor]:
    """The outputs (len(times), *y0.shape) and their tangents (P, len(times), *y0.shape) along P
    directions: `y0_dot` (P, *y0.shape) or None (zero), and `params_dot`, parameter name ->
    (P, *shape) (each named parameter is held at its value along its direction; the others are
    constant). At least one direction must be given."""
    with torch.no_grad():
        _, record = problem.integrate(problem.y0, problem.f0, problem.times)
    clock = problem.clock(problem.times.detach())
    names = list(params_dot)
    values = [substitution.parameters[name].detach() for name in names] if names else []
    dots = [params_dot[name] for name in names]
    count = (y0_dot if y0_dot is not None else dots[0]).shape[0]
    y0_dot = torch.zeros(count, *problem.y0.shape, dtype=problem.y0.dtype, device=problem.y0.device) \
        if y0_dot is None else y0_dot
    stepper, func = problem.stepper, problem.func

    def directional(compute: Callable, primals: list[Tensor], directions: list[Tensor]) -> tuple[list, list]:
        """compute(*primals) and its derivatives along the P directions of the primals and the parameters."""
        def at(*arguments):
            return _with(substitution, names, arguments, len(primals), compute)

        out, dot = vmap(lambda *d: jvp(at, (*primals, *values), d))(*directions, *dots)
        return [o[0] for o in out], list(dot)

    outputs: list[Tensor | None] = [None] * len(problem.times)
    tangents: list[Tensor | None] = [None] * len(problem.times)
    y, y_dot = problem.y0.detach(), y0_dot
    v = v_dot = None
    if stepper.state_carry(problem.f0) is not None:
        t0 = clock.times[clock.anchor_outputs[0]]
        (v,), (v_dot,) = directional(lambda z: (func(t0, z),), [y], [y_dot])
    outputs[clock.anchor_outputs[0]], tangents[clock.anchor_outputs[0]] = y, y_dot
    for i in range(len(record)):
        state, state_dot = ([y], [y_dot]) if v is None else ([y, v], [y_dot, v_dot])
        outs, outs_dot = directional(lambda z, c=None: tuple(replay_step(problem, record, clock, i, func, z, c)),
                                     state, state_dot)
        y, y_dot = outs[0], outs_dot[0]
        if v is not None:
            v, v_dot = outs[1], outs_dot[1]
        inside = record.interior(i)
        if inside.stop > inside.start:
            outputs[inside] = list(outs[-1].unbind(0))
            tangents[inside] = list(outs_dot[-1].unbind(1))
        if record.ends_segment(i):
            k = clock.anchor_outputs[record.segment(i) + 1]
            outputs[k], tangents[k] = y, y_dot
    return torch.stack(outputs), torch.stack(tangents, dim=1)


def _with(substitution: Substitution | None, names: list[str], arguments: tuple, split: int, compute: Callable):
    """compute(*arguments[:split]) with the parameters `names` set to arguments[split:]."""
    if not names:
        return compute(*arguments[:split])
    with substitution.using(dict(zip(names, arguments[split:]))):
        return compute(*arguments[:split])
