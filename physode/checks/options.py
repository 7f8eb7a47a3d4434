"""Checks of the solver's method, gradient method and options: what a solve will run with."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from ..grad import ACA, GRADIENTS, GradientMethod
from ..grad.schedules import SCHEDULES
from ..solve import (
    CALLBACKS, COMPILE_SETTINGS, METHODS, REGISTRY, Callbacks, ConstantStep, Controller, GridSteps,
    PIController, RungeKutta, Stepper, caller_stacklevel, check_setting,
)
from .values import check_count, check_flag, is_real


OPTIONS = {
    "controller": "a step-size controller: PIController(...), IController(...) or ConstantStep(h); "
                  "in place of the step options below",
    "step_size": "fixed step, ConstantStep(step_size) (any method takes one; fixed-step methods without one "
                 "step from each output time to the next)",
    "grid_constructor": "fixed-step methods: a function (func, y0, t) -> the times to step on, from t[0] to t[-1]",
    "perturb": "evaluate func just after each step's start and just before its end, for a func that jumps at "
               "the step times (default False)",
    "first_step": "initial step of an adaptive method (default: chosen automatically)",
    "max_step": "largest step an adaptive method may take",
    "min_step": "smallest step an adaptive method takes; a step this small is accepted whatever its error (default 0)",
    "max_steps": "most accepted steps before SolverError (default 100000)",
    "land_on_outputs": "step exactly onto every output time instead of interpolating",
    "compile": "Runge-Kutta methods: run each step and its error estimate as a graph compiled by torch.compile: "
               "True, or a dict of its mode and backend, e.g. {'mode': 'reduce-overhead'} (default False)",
    "step_t": "times the steps must end on, besides the output times",
    "jump_t": "times where func is discontinuous: steps end on them and func is evaluated again just after them",
    "norm": "the error norm: a function of the weighted error (shaped like y0: a tuple for a tuple state) returning "
            "a scalar tensor (default: root mean square over every component)",
    "safety": "step-size safety factor (default 0.9)",
    "min_factor": "smallest step-size change factor (default 0.2)",
    "max_factor": "largest step-size change factor (default 10)",
    "beta1": "exponent of the current error, times 1/q (default 1)",
    "beta2": "exponent of the previous error, times 1/q (default 0, an integral controller; Hairer's DOPRI5 "
             "PI controller is beta1=0.85, beta2=0.2)",
    "checkpoints": "deprecated: use gradient=ACA(checkpoints=K)",
    "checkpoint_schedule": "deprecated: use gradient=ACA(checkpoints=K, schedule=...)",
}
# torchdiffeq's names for the same options
ALIASES = {"ifactor": "max_factor", "dfactor": "min_factor", "max_num_steps": "max_steps"}
# every option, the methods' own included (the registry is fixed at import)
_VALID = {**OPTIONS, **{key: f"{text} ({name})" for name, entry in REGISTRY.items()
                        for key, text in entry.options.items()}}
# the methods whose steps options['compile'] compiles
_RUNGE_KUTTA = sorted(name for name, entry in REGISTRY.items()
                      if isinstance(entry.build, partial) and entry.build.func is RungeKutta)
_CONTROLLER_OPTIONS = ("safety", "min_factor", "max_factor", "beta1", "beta2")
_STEP_OPTIONS = ("first_step", "max_step", "min_step", *_CONTROLLER_OPTIONS)
MAX_STEPS = 100_000


@dataclass(frozen=True)
class Settings:
    """The checked options: the step-size controller, landing, the step budget, the method's own
    options, the gradient method (with its options, where they came as deprecated options), the
    stop times (step_t, jump_t), perturbation, the grid constructor and the error norm."""

    controller: Controller
    land: bool
    max_steps: int
    method_options: dict
    gradient: GradientMethod
    step_t: tuple[float, ...] = ()
    jump_t: tuple[float, ...] = ()
    perturb: bool = False
    grid_constructor: Callable | None = None
    norm: Callable | None = None
    compile: tuple[tuple[str, str], ...] | None = None

FORWARD_ONLY = "scipy_solver"  # scipy.integrate.solve_ivp: odeint and solve only, no gradients


def check_method(method: str) -> str:
    """A method of the registry (`FORWARD_ONLY` is dispatched before this check, by odeint and solve only)."""
    if not isinstance(method, str):
        raise TypeError(f"method must be a method's name, a string such as 'dopri5', got {type(method).__name__}")
    if method == FORWARD_ONLY:
        raise ValueError(f"method={FORWARD_ONLY!r} runs scipy.integrate.solve_ivp: it solves forward through "
                         "physode.odeint and physode.solve only, with no gradients or sensitivities; use a physode "
                         f"method ({', '.join(METHODS)})")
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r}; valid methods are {', '.join([*METHODS, FORWARD_ONLY])}")
    return method


def check_gradient(gradient: str | GradientMethod) -> GradientMethod:
    """A gradient method by name (its default instance) or a GradientMethod value such as ACA(checkpoints=8)."""
    if isinstance(gradient, str):
        if gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {gradient!r}; valid gradients are {', '.join(sorted(GRADIENTS))}")
        return GRADIENTS[gradient]
    if isinstance(gradient, type):
        raise TypeError(f"gradient must be a GradientMethod value such as ACA(), got the class {gradient.__name__}")
    if not (isinstance(getattr(gradient, "name", None), str)
            and all(callable(getattr(gradient, key, None)) for key in ("solve", "check"))):
        raise TypeError(f"gradient must be one of {sorted(GRADIENTS)} or a GradientMethod such as ACA() (with a name, "
                        f"check and solve), got {gradient!r}")
    return gradient


def check_options(options: dict | None, method: str, gradient: GradientMethod) -> Settings:
    """options -> Settings, refusing unknown keys, wrong types and options that do not apply."""
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    options = _renamed(dict(options or {}))
    unknown = sorted(set(options) - set(_VALID))
    if unknown:
        listing = "; ".join(f"{k}: {v}" for k, v in _VALID.items())
        aliases = ", ".join(f"{k} (= {v})" for k, v in ALIASES.items())
        raise ValueError(f"unknown options {unknown}; valid options are {listing}; and torchdiffeq's {aliases}")
    land = check_flag("options['land_on_outputs']", options.pop("land_on_outputs", False))
    perturb = check_flag("options['perturb']", options.pop("perturb", False))
    compiled = _compile_settings(options.pop("compile", False), method)
    controller = options.pop("controller", None)
    functions = {key: options.pop(key, None) for key in ("grid_constructor", "norm")}
    for key, value in functions.items():
        if value is not None and not callable(value):
            raise TypeError(f"options[{key!r}] must be a function, got {type(value).__name__}")
    stops = {key: _times(key, options.pop(key, None)) for key in ("step_t", "jump_t")}
    shared = sorted(set(stops["step_t"]) & set(stops["jump_t"]))
    if shared:
        raise ValueError(f"options['step_t'] and ['jump_t'] must not share times, both have {shared}")
    gradient = _deprecated_checkpoints(options, gradient)
    if compiled is not None and gradient.name == "adjoint":
        raise ValueError("options['compile'] compiles physode's own steps; gradient='adjoint' steps with torchdiffeq's "
                         "solver: use gradient='aca' or 'direct'")
    for key, value in options.items():
        if value is not None and not is_real(value):
            raise TypeError(f"options[{key!r}] must be a number, got {value!r}")
    for key in ("step_size", "first_step", "max_step", "min_step", *_CONTROLLER_OPTIONS):
        if options.get(key) is not None:
            check_setting("h" if key == "step_size" else key, options[key], f"options[{key!r}]")
            options[key] = float(options[key])
    max_steps = check_count("options['max_steps']", options.pop("max_steps", MAX_STEPS))
    own = REGISTRY[method].options
    for key in sorted(set(options) - set(_STEP_OPTIONS) - {"step_size"} - set(own)):
        owner = next(name for name, entry in REGISTRY.items() if key in entry.options)
        raise ValueError(f"options[{key!r}] is {REGISTRY[owner].options[key]} of method {owner!r}, not of {method!r}")
    controller = _controller(controller, options, method, functions["grid_constructor"] is not None)
    return Settings(
        controller=controller, land=land or (isinstance(controller, GridSteps) and functions["grid_constructor"] is None),
        max_steps=max_steps, method_options={key: options[key] for key in own if key in options}, gradient=gradient,
        perturb=perturb, compile=compiled, **stops, **functions,
    )


def _compile_settings(value, method: str) -> tuple[tuple[str, str], ...] | None:
    """options['compile'] as torch.compile's settings (None: not compiled)."""
    if value is False or value is None:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict) or not all(key in COMPILE_SETTINGS and isinstance(v, str) for key, v in value.items()):
        raise ValueError(f"options['compile'] must be True, False or a dict of torch.compile's {list(COMPILE_SETTINGS)} "
                         f"as strings, got {value!r}")
    if method not in _RUNGE_KUTTA:
        raise ValueError(f"options['compile'] compiles Runge-Kutta steps; method {method!r} is not one: use one of "
                         f"{', '.join(_RUNGE_KUTTA)}")
    return tuple(sorted(value.items()))


def _renamed(options: dict) -> dict:
    """torchdiffeq's option names as ours; both names of one option is an error."""
    for theirs, ours in ALIASES.items():
        if theirs in options:
            if ours in options:
                raise ValueError(f"options[{theirs!r}] is torchdiffeq's name for options[{ours!r}]: give one of them")
            options[ours] = options.pop(theirs)
    return options


def _times(key: str, value) -> tuple[float, ...]:
    """A 1-D sequence of finite times, as floats."""
    if value is None:
        return ()
    try:
        values = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"options[{key!r}] must be a 1-D tensor or sequence of times, got {type(value).__name__}") from error
    if values.ndim != 1 or not bool(torch.isfinite(values).all()):
        raise ValueError(f"options[{key!r}] must be a 1-D tensor of finite times, got {value!r}")
    return tuple(values.tolist())


def _controller(controller, options: dict, method: str, gridded: bool) -> Controller:
    """The controller given, or the one the step options describe, or the method's default (a
    fixed-step method without a step size steps on the grid: the output times, or its `gridded` grid)."""
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
        if gridded:
            raise ValueError("options['step_size'] and ['grid_constructor'] both set the steps: give one of them")
        return ConstantStep(options["step_size"])
    default = REGISTRY[method].controller
    if default is None or gridded:
        misplaced = sorted(set(options) & set(_STEP_OPTIONS))
        if default is not None:
            raise ValueError(f"options['grid_constructor'] is for fixed-step methods, not {method!r}: use step_t")
        if misplaced:
            raise ValueError(f"options {misplaced} control adaptive steps; method {method!r} is fixed-step")
        return GridSteps()
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
                  DeprecationWarning, stacklevel=caller_stacklevel())
    return ACA(checkpoints=checkpoints, schedule=schedule)


def check_callbacks(callbacks: Callbacks | None, controller: Controller | None, method: str) -> None:
    """Warn of the func's step callbacks that the method will not call (as torchdiffeq does)."""
    if callbacks is None:
        return
    unused = [name for name, call in zip(CALLBACKS, (callbacks.step, callbacks.accept, callbacks.reject))
              if call is not None and (controller is None or (name != CALLBACKS[0] and not controller.adaptive))]
    if unused:
        why = "solve_ivp steps on its own" if controller is None else "fixed steps are not judged"
        warnings.warn(f"func's {', '.join(unused)} will not be called: method {method!r} ({why})",
                      stacklevel=caller_stacklevel())


def check_pairing(stepper: Stepper, controller: Controller, gradient: GradientMethod) -> None:
    """The controller and the gradient method must suit the stepper."""
    if controller.adaptive and not stepper.adaptive:
        raise ValueError(f"method {stepper.name!r} has no error estimate to control adaptive steps: "
                         "use options={'step_size': h} or options={'controller': ConstantStep(h)}")
    gradient.check(stepper)
