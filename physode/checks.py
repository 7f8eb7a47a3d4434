"""Every check at the public boundary: the solver's arguments and options, counts and numbers,
and Datasets. A wrong type raises TypeError, a wrong value ValueError; messages name the argument."""

from __future__ import annotations

import dataclasses
import math
import numbers
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import xarray as xr
from torch import Tensor, nn

from .grad import ACA, GRADIENTS, GradientMethod
from .grad.schedules import SCHEDULES
from .solve import (
    METHODS, REGISTRY, ConstantStep, Controller, PIController, StateLayout, StateTensors, Stepper, check_setting,
)

OPTIONS = {
    "controller": "a step-size controller: PIController(...), IController(...) or ConstantStep(h); "
                  "in place of the step options below",
    "step_size": "fixed step, ConstantStep(step_size) (required by euler, midpoint and rk4; any method takes one)",
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
    "checkpoints": "deprecated: use gradient=ACA(checkpoints=K)",
    "checkpoint_schedule": "deprecated: use gradient=ACA(checkpoints=K, schedule=...)",
}
_CONTROLLER_OPTIONS = ("safety", "min_factor", "max_factor", "beta1", "beta2")
_STEP_OPTIONS = ("first_step", "max_step", *_CONTROLLER_OPTIONS)
MAX_STEPS = 100_000


@dataclass(frozen=True)
class Settings:
    """The checked options: the step-size controller, landing, the step budget, the method's own
    options, and the gradient method (with its options, where they came as deprecated options)."""

    controller: Controller
    land: bool
    max_steps: int
    method_options: dict
    gradient: GradientMethod


def check_count(name: str, value, minimum: int = 1, allow_none: bool = False) -> int | None:
    """An integer >= minimum (1: "positive", 0: "non-negative"), or None where allowed."""
    if value is None and allow_none:
        return None
    expected = "a positive" if minimum == 1 else "a non-negative"
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be {expected} integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {expected} integer, got {value}")
    return int(value)


def check_real(name: str, value, *, positive: bool) -> float:
    """A finite number, > 0 (`positive`) or >= 0."""
    expected = "a positive" if positive else "a non-negative"
    if not _is_real(value):
        raise TypeError(f"{name} must be {expected} finite number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {expected} finite number, got {value}")
    return float(value)


def check_fraction(name: str, value, *, closed: bool = False) -> float:
    """A number in (0, 1), or in (0, 1] when `closed`."""
    interval = "(0, 1]" if closed else "(0, 1)"
    if not _is_real(value):
        raise TypeError(f"{name} must be a fraction in {interval}, got {type(value).__name__} {value!r}")
    if not (0 < value < 1 or (closed and value == 1)):
        raise ValueError(f"{name} must be a fraction in {interval}, got {value}")
    return float(value)


def check_fit_tolerance(name: str, value) -> float:
    """A least-squares stopping tolerance (ftol, xtol, gtol): a number in [0, 1), 0 turning its test off."""
    if not _is_real(value):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__} {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1) (0 turns its test off), got {value}")
    return float(value)


def check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_dataset(ds, name: str = "data", dims: tuple[str, ...] = ("series", "time")) -> xr.Dataset:
    """An xarray.Dataset with the dimensions `dims` (and a 'time' coordinate where 'time' is one)."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{name} must be an xarray.Dataset, got {type(ds).__name__}")
    for dim in dims:
        if dim not in ds.dims:
            raise ValueError(f"{name} has no {dim!r} dimension (dims: {list(ds.dims)}); "
                             "physode datasets have dims ('series', 'time', *state dims)")
    if "time" in dims and "time" not in ds.coords:
        raise ValueError(f"{name} has no 'time' coordinate")
    return ds


def check_method(method: str) -> str:
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r}; valid methods are {', '.join(METHODS)}")
    return method


def check_gradient(gradient: str | GradientMethod) -> GradientMethod:
    """A gradient method by name (its default instance) or a GradientMethod value such as ACA(checkpoints=8)."""
    if isinstance(gradient, str):
        if gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {gradient!r}; valid gradients are {', '.join(sorted(GRADIENTS))}")
        return GRADIENTS[gradient]
    if not all(callable(getattr(gradient, key, None)) for key in ("solve", "check")):
        raise TypeError(f"gradient must be one of {sorted(GRADIENTS)} or a GradientMethod such as ACA(), got {gradient!r}")
    return gradient


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


def check_options(options: dict | None, method: str, gradient: GradientMethod) -> Settings:
    """options -> Settings, refusing unknown keys, wrong types and options that do not apply."""
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        listing = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
        raise ValueError(f"unknown options {unknown}; valid options are {listing}")
    land = check_flag("options['land_on_outputs']", options.pop("land_on_outputs", False))
    controller = options.pop("controller", None)
    gradient = _deprecated_checkpoints(options, gradient)
    for key, value in options.items():
        if value is not None and not _is_real(value):
            raise TypeError(f"options[{key!r}] must be a number, got {value!r}")
    for key in ("step_size", "first_step", "max_step", *_CONTROLLER_OPTIONS):
        if options.get(key) is not None:
            check_setting("h" if key == "step_size" else key, options[key], f"options[{key!r}]")
            options[key] = float(options[key])
    max_steps = check_count("options['max_steps']", options.pop("max_steps", MAX_STEPS))
    own = REGISTRY[method].options
    for key in sorted(set(options) - set(_STEP_OPTIONS) - {"step_size"} - set(own)):
        owner = next(name for name, entry in REGISTRY.items() if key in entry.options)
        raise ValueError(f"options[{key!r}] is {REGISTRY[owner].options[key]} of method {owner!r}, not of {method!r}")
    return Settings(controller=_controller(controller, options, method), land=land, max_steps=max_steps,
                    method_options={key: options[key] for key in own if key in options}, gradient=gradient)


def _controller(controller, options: dict, method: str) -> Controller:
    """The controller given, or the one the step options describe, or the method's default."""
    step_options = sorted(set(options) & {"step_size", *_STEP_OPTIONS})
    if controller is not None:
        if not all(callable(getattr(controller, key, None)) for key in ("init", "adapt")):
            raise TypeError("options['controller'] must be a step-size controller such as PIController(), "
                            f"IController() or ConstantStep(h), got {controller!r}")
        if step_options:
            raise ValueError(f"options['controller'] replaces options {step_options}: set them on the controller")
        return controller
    if options.get("step_size") is not None:
        misplaced = sorted(set(options) & set(_STEP_OPTIONS))
        if misplaced:
            raise ValueError(f"options {misplaced} control adaptive steps and do not apply with options['step_size']")
        return ConstantStep(options["step_size"])
    default = REGISTRY[method].controller
    if default is None:
        raise ValueError(f"method {method!r} is fixed-step and needs options={{'step_size': h}}")
    chosen = {key: options[key] for key in _STEP_OPTIONS if key in options}
    if not chosen:
        return default
    settings = {field.name: getattr(default, field.name) for field in dataclasses.fields(PIController)}
    return PIController(**{**settings, **chosen})


def _deprecated_checkpoints(options: dict, gradient: GradientMethod) -> GradientMethod:
    """options['checkpoints'] and ['checkpoint_schedule'] as ACA(checkpoints, schedule), with a DeprecationWarning."""
    if "checkpoints" not in options and "checkpoint_schedule" not in options:
        return gradient
    checkpoints = options.pop("checkpoints", None)
    schedule = options.pop("checkpoint_schedule", "binomial")
    if schedule not in SCHEDULES:
        raise ValueError(f"options['checkpoint_schedule'] must be one of {sorted(SCHEDULES)}, got {schedule!r}")
    check_count("options['checkpoints']", checkpoints, allow_none=True)
    if not isinstance(gradient, ACA):
        raise ValueError(f"options['checkpoints'] and ['checkpoint_schedule'] are for gradient='aca', not {gradient.name!r}")
    if gradient != ACA():
        raise ValueError(f"options['checkpoints'] and ['checkpoint_schedule'] conflict with gradient={gradient!r}; "
                         "give them to ACA only")
    warnings.warn("options['checkpoints'] and ['checkpoint_schedule'] are deprecated and will be removed in the next "
                  f"release: pass gradient=physode.grad.ACA(checkpoints={checkpoints!r}, schedule={schedule!r})",
                  DeprecationWarning, stacklevel=_caller_stacklevel())
    return ACA(checkpoints=checkpoints, schedule=schedule)


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside physode, so that a warning points at the user's call."""
    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def check_pairing(stepper: Stepper, controller: Controller, gradient: GradientMethod) -> None:
    """The controller and the gradient method must suit the stepper."""
    if controller.adaptive and not stepper.adaptive:
        raise ValueError(f"method {stepper.name!r} has no error estimate to control adaptive steps: "
                         "use options={'step_size': h} or options={'controller': ConstantStep(h)}")
    gradient.check(stepper)


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


def check_derivative(f0, y0: StateTensors, layout: StateLayout) -> None:
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
