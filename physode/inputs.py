"""Checks of the solver's arguments at the call, with errors that name the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .grad import GRADIENTS, GradientMethod
from .grad.checkpoints import SCHEDULES
from .solve import FIXED_STEP_METHODS, METHODS, STEPPERS, PIController, StepControl
from .state import StateLayout

OPTIONS = {
    "step_size": "fixed step (required by euler, midpoint and rk4; any method takes one)",
    "first_step": "initial step of an adaptive method (default: chosen automatically)",
    "max_step": "largest step an adaptive method may take",
    "max_steps": "most accepted steps before SolverError (default 100000)",
    "land_on_outputs": "step exactly onto every output time instead of interpolating",
    "safety": "step-size safety factor (default 0.9)",
    "min_factor": "smallest step-size change factor (default 0.2)",
    "max_factor": "largest step-size change factor (default 10)",
    "beta1": "PI controller: exponent of the current error, times 1/q (default 0.85; alf: 1)",
    "beta2": "PI controller: exponent of the previous error, times 1/q (default 0.2; alf: 0)",
    "eta": "damping of the alf method, in (0, 1] but not 0.5 (default 1, undamped)",
    "checkpoints": "gradient='aca': keep at most this many states and recompute the others",
    "checkpoint_schedule": f"with checkpoints: one of {sorted(SCHEDULES)} (default 'binomial')",
}
_CONTROLLER_OPTIONS = ("safety", "min_factor", "max_factor", "beta1", "beta2")
_STEP_OPTIONS = ("first_step", "max_step", *_CONTROLLER_OPTIONS)


@dataclass(frozen=True)
class Settings:
    """The checked options: step control, landing, and those of a method or gradient method."""

    control: StepControl
    land: bool
    eta: float = 1.0
    checkpoints: int | None = None
    checkpoint_schedule: str = "binomial"


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods are {', '.join(METHODS)}")
    return method


def check_gradient(gradient: str | GradientMethod) -> GradientMethod:
    if isinstance(gradient, str):
        if gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {gradient!r}; valid gradients are {', '.join(sorted(GRADIENTS))}")
        return GRADIENTS[gradient]
    if not callable(getattr(gradient, "solve", None)):
        raise TypeError(f"gradient must be one of {sorted(GRADIENTS)} or a GradientMethod, got {gradient!r}")
    return gradient


def check_state(y0) -> Tensor | tuple[Tensor, ...]:
    """y0: a floating tensor, or a tuple of them sharing dtype and device; non-empty and finite."""
    if isinstance(y0, Tensor):
        pieces = [y0]
    elif isinstance(y0, (tuple, list)) and y0 and all(isinstance(p, Tensor) for p in y0):
        pieces = list(y0)
    else:
        raise TypeError(f"y0 must be a tensor or a tuple of tensors, got {type(y0).__name__}")
    for p in pieces:
        if not p.is_floating_point():
            raise TypeError(f"y0 must have a floating dtype such as torch.float32 or torch.float64, got {p.dtype}")
    if len({p.dtype for p in pieces}) > 1 or len({p.device for p in pieces}) > 1:
        found = ", ".join(f"{p.dtype} on {p.device}" for p in pieces)
        raise TypeError(f"the tensors of y0 must share one dtype and device, got {found}")
    if sum(p.numel() for p in pieces) == 0:
        raise ValueError("y0 is empty")
    if not all(bool(torch.isfinite(p).all()) for p in pieces):
        raise ValueError("y0 contains NaN or infinite values")
    return y0 if isinstance(y0, Tensor) else tuple(pieces)


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


def check_options(
    options: dict | None, method: str, gradient: str, rtol: float | Tensor, atol: float | Tensor
) -> Settings:
    """options -> Settings, refusing unknown keys, wrong types and options that do not apply."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        listing = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
        raise ValueError(f"unknown options {unknown}; valid options are {listing}")
    land = options.pop("land_on_outputs", False)
    if not isinstance(land, bool):
        raise TypeError(f"options['land_on_outputs'] must be True or False, got {land!r}")
    schedule = options.pop("checkpoint_schedule", "binomial")
    if schedule not in SCHEDULES:
        raise ValueError(f"options['checkpoint_schedule'] must be one of {sorted(SCHEDULES)}, got {schedule!r}")
    for key, value in options.items():
        if value is not None and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
            raise TypeError(f"options[{key!r}] must be a number, got {value!r}")
    for key in ("step_size", "first_step", "max_step"):
        if options.get(key) is not None:
            value = options[key]
            if not (value > 0 and (key == "max_step" or math.isfinite(value))):
                raise ValueError(f"options[{key!r}] must be a positive number, got {value!r}")
            options[key] = float(value)
    for key in ("max_steps", "checkpoints"):
        if key in options and not (isinstance(options[key], numbers.Integral) and options[key] > 0):
            raise ValueError(f"options[{key!r}] must be a positive integer, got {options[key]!r}")
    if "eta" in options and method != "alf":
        raise ValueError(f"options['eta'] is the damping of method 'alf', not of {method!r}")
    if ("checkpoints" in options or schedule != "binomial") and gradient != "aca":
        raise ValueError(f"options['checkpoints'] and ['checkpoint_schedule'] are for gradient='aca', not {gradient!r}")

    step_size = options.get("step_size")
    if step_size is None and method in FIXED_STEP_METHODS:
        raise ValueError(f"method {method!r} is fixed-step and needs options={{'step_size': h}}")
    if step_size is not None:
        misplaced = sorted(set(options) & set(_STEP_OPTIONS))
        if misplaced:
            raise ValueError(f"options {misplaced} control adaptive steps and do not apply with options['step_size']")
        control = StepControl(step_size=step_size, max_steps=int(options.get("max_steps", StepControl.max_steps)))
    else:
        chosen = {k: float(options[k]) for k in _CONTROLLER_OPTIONS if k in options}
        controller = PIController(**{**STEPPERS[method].controller_defaults, **chosen})
        control = StepControl(
            rtol=rtol, atol=atol, controller=controller, first_step=options.get("first_step"),
            max_step=options.get("max_step", math.inf), max_steps=int(options.get("max_steps", StepControl.max_steps)),
        )
    return Settings(
        control=control, land=land, eta=options.get("eta", 1.0), checkpoints=options.get("checkpoints"),
        checkpoint_schedule=schedule,
    )


def check_params(func: Callable, params) -> tuple[Tensor, ...]:
    """The tensors whose gradients are wanted, each once: `params`, else the parameters of func's nn.Module."""
    if params is not None:
        params = tuple(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"params[{i}] must be a tensor, got {type(p).__name__}")
    else:
        module = func if isinstance(func, nn.Module) else getattr(func, "__self__", None)
        params = tuple(module.parameters()) if isinstance(module, nn.Module) else ()
    unique = {id(p): p for p in params if p.requires_grad}
    return tuple(unique.values())


def check_derivative(f0, y0: Tensor | tuple[Tensor, ...], layout: StateLayout) -> None:
    """func(t0, y0) must match the state: same structure, shapes and dtype."""
    if layout.is_tuple:
        if not (isinstance(f0, (tuple, list)) and len(f0) == len(y0)):
            raise TypeError(f"func must return a tuple of {len(y0)} tensors like y0, got {_describe(f0)}")
        pairs = list(zip(f0, y0))
    else:
        pairs = [(f0, y0)]
    for i, (f, y) in enumerate(pairs):
        where = f"[{i}]" if layout.is_tuple else ""
        if not isinstance(f, Tensor):
            raise TypeError(f"func must return a tensor like y0{where}, got {_describe(f)}")
        if f.shape != y.shape:
            raise ValueError(f"func returned shape {tuple(f.shape)} but y0{where} has shape {tuple(y.shape)}")
        if f.dtype != y.dtype:
            raise TypeError(f"func returned dtype {f.dtype} but y0{where} has dtype {y.dtype}")
        if f.device != y.device:
            raise ValueError(f"func returned a tensor on {f.device} but y0{where} is on {y.device}")


def _describe(x) -> str:
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}"
    return type(x).__name__


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
