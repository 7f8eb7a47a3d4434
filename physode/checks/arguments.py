"""Checks of an initial value problem's tensors: the state, the times, the tolerances, what func
returns and depends on, and the directions of forward sensitivities."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from ..grad import GradientMethod
from ..solve import Controller, StateLayout, StateTensors


def check_state(y0) -> StateTensors:
    """y0: a floating tensor, or a tuple of them sharing dtype and device; non-empty and finite."""
    if isinstance(y0, Tensor):
        pieces = [y0]
    elif isinstance(y0, (tuple, list)) and y0 and all(isinstance(p, Tensor) for p in y0):
        pieces = list(y0)
    else:
        raise TypeError(f"y0 must be a tensor or a tuple of tensors, got {type(y0).__name__}")
    for p in pieces:
        if not p.is_floating_point():
            complex_hint = "; solve a complex state as its real and imaginary parts, torch.view_as_real(y0)"
            raise TypeError(f"y0 must have a floating dtype such as torch.float32 or torch.float64, got {p.dtype}"
                            f"{complex_hint if p.is_complex() else ''}")
    if len({p.dtype for p in pieces}) > 1 or len({p.device for p in pieces}) > 1:
        found = ", ".join(f"{p.dtype} on {p.device}" for p in pieces)
        raise TypeError(f"the tensors of y0 must share one dtype and device, got {found}")
    if sum(p.numel() for p in pieces) == 0:
        raise ValueError("y0 is empty")
    if not all(bool(torch.isfinite(p).all()) for p in pieces):
        raise ValueError("y0 contains NaN or infinite values")
    return y0 if isinstance(y0, Tensor) else tuple(pieces)


ADAPTIVE_DTYPES = (torch.float32, torch.float64)


def check_precision(dtype: torch.dtype, controller: Controller) -> None:
    """Adaptive steps need y0 in float32 or float64: in half precision the weighted error norm
    overflows (float16's largest number is 65504) and round-off exceeds any useful tolerance
    (bfloat16 resolves 0.4%); fixed steps take any floating dtype."""
    if controller.adaptive and dtype not in ADAPTIVE_DTYPES:
        raise TypeError(f"y0 has dtype {dtype}, too coarse for adaptive step-size control: use y0 in torch.float32 "
                        "or torch.float64, or fixed steps (options={'step_size': h}, or a fixed-step method such as "
                        "rk4 on the output times)")


def check_times(t, like: Tensor) -> Tensor:
    """t: 1-D, finite, strictly increasing or strictly decreasing; returned in like's dtype and device."""
    if not isinstance(t, Tensor):
        try:
            t = torch.as_tensor(t)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"t must be a 1-D tensor of times, got {type(t).__name__}") from error
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"t must be a non-empty 1-D tensor of times, got shape {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"t must hold real times, got {t.dtype}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError("t contains NaN or infinite values")
    times = t.to(dtype=like.dtype, device=like.device)
    steps = times[1:] - times[:-1]
    if not (bool((steps > 0).all()) or bool((steps < 0).all())):
        where = "" if t.dtype == like.dtype else f" (in the state's dtype {like.dtype})"
        raise ValueError(f"t must be strictly increasing or strictly decreasing{where}")
    return times


def check_tolerance(name: str, tol, layout: StateLayout, like: Tensor) -> float | Tensor:
    """A positive number, or positive tensors broadcastable to the state (one per tuple element)."""
    if isinstance(tol, numbers.Real) and not isinstance(tol, bool):
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"{name} must be positive and finite, got {tol!r}")
        return float(tol)
    if layout.is_tuple and isinstance(tol, (tuple, list)):
        if len(tol) != len(layout.shapes):
            raise ValueError(f"{name} as a tuple must have one entry per tensor of y0 ({len(layout.shapes)}), got {len(tol)}")
        parts = [_tolerance_tensor(f"{name}[{i}]", x, shape, like) for i, (x, shape) in enumerate(zip(tol, layout.shapes))]
        return torch.cat([p.reshape(-1) for p in parts])
    if isinstance(tol, Tensor) and tol.numel() == 1 and not tol.requires_grad:
        return check_tolerance(name, tol.item(), layout, like)
    if isinstance(tol, Tensor):
        if layout.is_tuple:
            raise ValueError(f"{name} for a tuple state must be a number or a tuple with one entry per tensor of y0")
        return _tolerance_tensor(name, tol, like.shape if not layout.is_tuple else (), like)
    raise TypeError(f"{name} must be a positive number or tensor, got {type(tol).__name__}")


def _tolerance_tensor(name: str, tol, shape, like: Tensor) -> Tensor:
    tol = torch.as_tensor(tol, dtype=like.dtype, device=like.device)
    if not bool((torch.isfinite(tol) & (tol > 0)).all()):
        raise ValueError(f"{name} must be positive and finite everywhere")
    try:
        return torch.broadcast_to(tol, shape)
    except RuntimeError as error:
        raise ValueError(f"{name} of shape {tuple(tol.shape)} does not broadcast to the state's shape {tuple(shape)}") from error


def check_params(func: Callable, params, name: str = "params") -> tuple[Tensor, ...]:
    """The tensors whose gradients are wanted, each once: `params` (the argument `name`), else the
    parameters of func's nn.Module."""
    if params is not None:
        if isinstance(params, Tensor) or not isinstance(params, Iterable):
            raise TypeError(f"{name} must be a sequence of tensors such as (weight, bias), got {type(params).__name__}")
        params = tuple(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}[{i}] must be a tensor, got {type(p).__name__}")
    else:
        module = func if isinstance(func, nn.Module) else getattr(func, "__self__", None)
        params = tuple(module.parameters()) if isinstance(module, nn.Module) else ()
    unique = {id(p): p for p in params if p.requires_grad}
    return tuple(unique.values())


def untracked_tensors(output: Tensor, known: list[Tensor]) -> list[Tensor]:
    """Tensors requiring grad that `output`'s graph reaches without passing through a `known` tensor."""
    known_ids = {id(k) for k in known}
    known_nodes = {k.grad_fn for k in known if k.grad_fn is not None}
    found, seen, stack = [], set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen or node in known_nodes:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if variable is not None:
            if id(variable) not in known_ids:
                found.append(variable)
            continue
        stack.extend(fn for fn, _ in node.next_functions)
    return found


def check_declared(f0: StateTensors, params: tuple[Tensor, ...], gradient: GradientMethod) -> None:
    """A gradient method that differentiates only the declared params would silently miss others."""
    pieces = [f0] if isinstance(f0, Tensor) else list(f0)
    untracked = [u for f in pieces if f.grad_fn is not None for u in untracked_tensors(f, list(params))]
    if untracked:
        shapes = ", ".join(str(tuple(u.shape)) for u in untracked)
        raise ValueError(
            f"func depends on {len(untracked)} tensor(s) that require grad but are not among its parameters, "
            "such as y0, t or a tensor it closes over "
            f"(shapes {shapes}); gradient={gradient.name!r} would miss their gradients. Make func an nn.Module "
            "that owns them, or pass them as params=(...)"
        )


def check_tangents(y0_tangents, param_tangents, layout: StateLayout, y0: Tensor, substitution) -> tuple:
    """Directions for `jvp`: y0's as one flat tensor (P, *y0.shape) or None, and {name: (P, *shape)}
    for parameters of func, all with the same P, in the state's dtype and on its device."""
    counts = set()
    y0_dot = None
    if y0_tangents is not None:
        pieces = list(y0_tangents) if layout.is_tuple and isinstance(y0_tangents, (tuple, list)) else [y0_tangents]
        if len(pieces) != len(layout.shapes) or not all(isinstance(p, Tensor) for p in pieces):
            raise TypeError(f"y0_tangents must be shaped like y0 with a leading dimension of directions: "
                            f"{'a tuple of ' + str(len(layout.shapes)) + ' tensors' if layout.is_tuple else 'a tensor'}")
        for i, (piece, shape) in enumerate(zip(pieces, layout.shapes)):
            where = f"[{i}]" if layout.is_tuple else ""
            if piece.ndim != len(shape) + 1 or tuple(piece.shape[1:]) != tuple(shape):
                raise ValueError(f"y0_tangents{where} must have shape (P, *{tuple(shape)}), got {tuple(piece.shape)}")
            counts.add(piece.shape[0])
        y0_dot = layout.flatten(tuple(p.to(y0) for p in pieces) if layout.is_tuple else pieces[0].to(y0), batch=1)
    params_dot = {}
    if param_tangents is not None:
        if not isinstance(param_tangents, dict):
            raise TypeError(f"param_tangents must be a dict of parameter name -> tensor, got {type(param_tangents).__name__}")
        for name, value in param_tangents.items():
            if name not in substitution.parameters:
                raise ValueError(f"param_tangents names {name!r}, which is not a parameter of func; its parameters are "
                                 f"{sorted(substitution.parameters)}")
            shape = tuple(substitution.parameters[name].shape)
            if not isinstance(value, Tensor) or value.ndim != len(shape) + 1 or tuple(value.shape[1:]) != shape:
                raise ValueError(f"param_tangents[{name!r}] must be a tensor of shape (P, *{shape})")
            counts.add(value.shape[0])
            params_dot[name] = value.to(substitution.parameters[name])
    if not counts:
        raise ValueError("jvp needs directions: y0_tangents, param_tangents or both")
    if len(counts) > 1 or 0 in counts:
        raise ValueError(f"every tangent must have the same positive number of directions P (leading dimension), got {sorted(counts)}")
    return y0_dot, params_dot
