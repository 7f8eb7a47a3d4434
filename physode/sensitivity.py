"""Sensitivities of a solution to its initial state and parameters, by forward-mode differentiation
of the discrete solution: `jvp` along chosen directions, `jacobian` along all of them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_tangents
from .grad import Substitution, tangent_sweep
from .problem import setup
from .solve import StateTensors, Stats


@dataclass
class Sensitivity:
    """The result of `jvp`: output times `ts`, states `ys` (len(ts), *y0.shape), their `tangents`
    (P, len(ts), *y0.shape) along the P directions (tuples of such for a tuple state), and `stats`
    (the evaluations of the solve and of the forward sweep together)."""

    ts: Tensor
    ys: StateTensors
    tangents: StateTensors
    stats: Stats


@dataclass
class Jacobian:
    """The result of `jacobian`: `ts`, `ys`, and the derivatives of ys with respect to `y0`, shape
    (len(ts), *y.shape, *y0.shape), and to each parameter, `params[name]` of shape
    (len(ts), *y.shape, *parameter.shape). For a tuple state, `y0[i][j]` is d ys[i] / d y0[j] and
    `params[name][i]` is d ys[i] / d parameter. Entries not asked for (`wrt`) are None or absent."""

    ts: Tensor
    ys: StateTensors
    y0: StateTensors | tuple[tuple[Tensor, ...], ...] | None
    params: dict[str, StateTensors]
    stats: Stats


def jvp(
    func: Callable, y0: StateTensors, t: Tensor | Sequence[float], y0_tangents: StateTensors | None = None,
    param_tangents: Mapping[str, Tensor] | None = None, *, method: str = "dopri5", rtol: float | Tensor = 1e-6,
    atol: float | Tensor = 1e-8, options: dict | None = None,
) -> Sensitivity:
    """Solve dy/dt = func(t, y) as `physode.solve` does, and differentiate the solution along P
    directions at once: `y0_tangents` shaped like y0 with a leading dimension P (None: zero), and
    `param_tangents`, parameter name (as in func's `named_parameters()`) -> (P, *shape).

    The tangents are the exact derivatives of the discrete solution (the same steps, with the
    step-size search held fixed): what `gradient="direct"` differentiates in reverse. Cheap when
    the directions are few and the outputs many: sensitivities of a trajectory to a few
    parameters, Jacobians for least squares, identifiability and experiment design. Parameter
    directions need func to be an nn.Module or a method of one; func must work under torch.func
    transforms (no in-place changes of its own state, no data-dependent Python control flow on
    tensors that depend on y).
    """
    substitution = Substitution(func) if param_tangents or _has_module(func) else None
    problem, layout, _ = setup(substitution or func, _detached(y0), t, method, rtol, atol, "direct", options, None)
    y0_dot, params_dot = check_tangents(y0_tangents, param_tangents, layout, problem.y0, substitution)
    ys, tangents = tangent_sweep(problem, substitution, y0_dot, params_dot)
    count = tangents.shape[0]
    return Sensitivity(ts=problem.times, ys=layout.unflatten(ys, len(ys)),
                       tangents=layout.unflatten(tangents, count, len(ys)), stats=problem.stats)


def jacobian(
    func: Callable, y0: StateTensors, t: Tensor | Sequence[float], *, wrt: Sequence[str] | None = None,
    method: str = "dopri5", rtol: float | Tensor = 1e-6, atol: float | Tensor = 1e-8, options: dict | None = None,
) -> Jacobian:
    """The Jacobian of the solution at every output time with respect to y0 and to func's
    parameters, by `jvp` along every entry of them (one forward sweep with that many directions).

    `wrt` names what to differentiate: "y0" and/or parameter names of func's module (default: y0
    and every parameter that requires grad).
    """
    is_tuple = not isinstance(y0, Tensor)
    pieces = list(y0) if is_tuple else [y0]
    parameters = Substitution(func).parameters if _has_module(func) else {}
    wrt = ["y0", *(name for name, p in parameters.items() if p.requires_grad)] if wrt is None else list(wrt)
    for name in wrt:
        if name != "y0" and name not in parameters:
            raise ValueError(f"wrt names {name!r}, which is neither 'y0' nor a parameter of func ({sorted(parameters)})")
    # every input entry is one direction: y0's pieces first, then the parameters, in the order of wrt
    inputs = [(("y0", j), tuple(p.shape)) for j, p in enumerate(pieces)] if "y0" in wrt else []
    inputs += [((name,), tuple(parameters[name].shape)) for name in wrt if name != "y0"]
    sizes = [math.prod(shape) for _, shape in inputs]
    if not sum(sizes):
        raise ValueError("wrt selects nothing to differentiate")
    eye = torch.eye(sum(sizes), dtype=pieces[0].dtype, device=pieces[0].device)
    directions = {key: block.reshape(-1, *shape) for (key, shape), block in zip(inputs, eye.split(sizes, dim=1))}
    y0_tangents = None
    if "y0" in wrt:
        y0_tangents = tuple(directions[("y0", j)] for j in range(len(pieces))) if is_tuple else directions[("y0", 0)]
    param_tangents = {key[0]: value for key, value in directions.items() if key[0] != "y0"}
    sensitivity = jvp(func, y0, t, y0_tangents, param_tangents or None, method=method, rtol=rtol, atol=atol,
                      options=options)
    outputs = list(sensitivity.tangents) if is_tuple else [sensitivity.tangents]
    derivatives, start = {}, 0
    for (key, shape), size in zip(inputs, sizes):
        # d ys[i] / d input: (len(ts), *y_i.shape, *input shape) for every output piece i
        derivatives[key] = [out[start:start + size].movedim(0, -1).reshape(*out.shape[1:], *shape) for out in outputs]
        start += size
    d_y0 = None
    if "y0" in wrt:
        by_input = [derivatives[("y0", j)] for j in range(len(pieces))]
        d_y0 = tuple(tuple(d[i] for d in by_input) for i in range(len(outputs))) if is_tuple else by_input[0][0]
    d_params = {key[0]: tuple(d) if is_tuple else d[0] for key, d in derivatives.items() if key[0] != "y0"}
    return Jacobian(ts=sensitivity.ts, ys=sensitivity.ys, y0=d_y0, params=d_params, stats=sensitivity.stats)


def _has_module(func: Callable) -> bool:
    return isinstance(func, torch.nn.Module) or isinstance(getattr(func, "__self__", None), torch.nn.Module)


def _detached(y0):
    if isinstance(y0, Tensor):
        return y0.detach()
    if isinstance(y0, (tuple, list)):
        return tuple(p.detach() if isinstance(p, Tensor) else p for p in y0)
    return y0
