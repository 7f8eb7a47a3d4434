"""Runge-Kutta steps compiled with torch.compile: all stages with the user's vector field inlined,
and the error estimate with its weighted norm, in one graph (one fused kernel per stretch of
elementwise work), with its backward compiled too where the step is differentiated (the reverse
sweep of `aca`, the forward graph of `direct`). The accept/reject decision, the bookkeeping and
the interpolation stay eager.

The compiled functions are shared by every solve of the process and specialised by torch.compile's
guards, so that the solves of a fit (the same func, shapes and dtype) compile once. A func that
breaks the graph is compiled as several graphs, with a warning that names the break; one that
cannot be compiled at all runs eagerly, with a warning.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import torch
from torch import Tensor
from torch._dynamo.utils import counters

from .clock import Span
from .control import Tolerance, WeightedNorm
from .errors import caller_stacklevel
from .layout import StateLayout
from .stats import CountedFunc

SETTINGS = ("mode", "backend")  # the keyword arguments of torch.compile that options['compile'] may set


def _step(stepper, func: Callable, span: Span, y: Tensor, carry: Tensor | None, full: bool,
          tolerance: Tolerance | None):
    """The step, and its error ratio under the tolerance where one is given."""
    y1, ks = stepper.step(func, span, y, carry, full)
    return y1, ks, None if tolerance is None else stepper.error(span.h, ks, tolerance.weigh(y, y1))


class _PerFunc:
    """What is known of each func: held weakly where func allows it (a module, a function)."""

    def __init__(self):
        self._weak: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._strong: dict[int, tuple[Callable, dict]] = {}

    def __call__(self, func: Callable) -> dict:
        try:
            return self._weak.setdefault(func, {})
        except TypeError:  # not weakly referenceable
            return self._strong.setdefault(id(func), (func, {}))[1]


class _Graphs:
    """`fn` compiled with the settings: in one graph where func allows it, else with graph breaks
    (warned once per func), else eagerly (warned once per func). The choice is made at a func's
    first call; a compiled call that fails later, or a func compiled again for a variant of the
    step it was already compiled for (it reads a Python number that changes), also turns eager."""

    def __init__(self, fn: Callable, settings: tuple[tuple[str, str], ...], device: str):
        self.fn = fn
        arguments = dict(settings)
        if device == "cpu" and "mode" not in arguments and arguments.get("backend", "inductor") == "inductor":
            arguments["options"] = {"cpp_wrapper": True}  # the kernels' calls from C++: less overhead per step
        try:
            self.whole = torch.compile(fn, fullgraph=True, dynamic=False, **arguments)
            self.broken = torch.compile(fn, dynamic=False, **arguments)
        except Exception as error:  # noqa: BLE001 - torch's own error for a mode or backend it does not know
            raise ValueError(f"options['compile'] = {dict(settings)!r}: {type(error).__name__}: "
                             f"{_first_line(error)}") from error
        self.known = _PerFunc()  # func -> {"chosen": fn, "variants": set, "repeats": int}

    def __call__(self, func: Callable, variant: tuple, *args):
        known = self.known(func)
        chosen = known.get("chosen")
        if chosen is self.fn:
            return chosen(*args)
        if chosen is None:
            out, known["chosen"] = self._first(args)
            known["variants"], known["repeats"] = {variant}, 0
            return out
        graphs = counters["stats"]["unique_graphs"]
        try:
            out = chosen(*args)
        except Exception as error:  # noqa: BLE001 - eager raises the user's own errors again
            out, known["chosen"] = self._eager(error, args)
            return out
        if counters["stats"]["unique_graphs"] != graphs:
            known["repeats"] += variant in known["variants"]
            known["variants"].add(variant)
            if known["repeats"] > REPEATS:
                known["chosen"] = self.fn
                warnings.warn(f"options['compile']: func was compiled {REPEATS} more times for the same shapes and "
                              "modes, so it runs eagerly from now on: it reads a Python number that changes from "
                              "call to call (a counter attribute, say); keep such numbers in tensors",
                              stacklevel=caller_stacklevel())
        return out

    def _first(self, args) -> tuple[object, Callable]:
        try:
            return self.whole(*args), self.whole
        except Exception as whole_error:  # noqa: BLE001 - a graph break, or a failure of the compiler
            if _limit_hit(whole_error):
                return self._eager(whole_error, args)
            try:
                out = self.broken(*args)
            except Exception as error:  # noqa: BLE001
                return self._eager(error, args)
            warnings.warn(f"options['compile']: func breaks the compiled graph, so each step runs as several graphs "
                          f"with Python in between: {_first_line(whole_error)}", stacklevel=caller_stacklevel())
            return out, self.broken

    def _eager(self, error: Exception, args) -> tuple[object, Callable]:
        why = (f"torch's limit of {_limit()} compiled versions of a step per process is reached" if _limit_hit(error)
               else f"{type(error).__name__}: {_first_line(error)}")
        warnings.warn(f"options['compile']: func could not be compiled, so it runs eagerly: {why}",
                      stacklevel=caller_stacklevel())
        return self.fn(*args), self.fn


def _first_line(error: Exception) -> str:
    """The error's first line, with the next one where the first ends in a colon."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    return " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]


def _limit_name() -> str:
    return "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"  # (< 2.6)


def _limit() -> int:
    return getattr(torch._dynamo.config, _limit_name())


def _limit_hit(error: Exception) -> bool:
    return type(error).__name__ == "FailOnRecompileLimitHit" or "recompile_limit" in str(error)


_CACHE: dict[tuple, _Graphs] = {}
# A step is compiled once for each combination of grad mode, first stage given or not, full or not
# and which inputs require grad, for each func, shape and dtype: more than torch's default limit of
# graphs per function (8) in a process that fits several models. (The limit is torch's, for all
# compiled functions of the process.)
RECOMPILE_LIMIT = 64
# Compilations of one func for a variant of the step it was already compiled for, before it is
# given up for eager: a func that reads a changing Python number is compiled again at every step.
REPEATS = 8


def _graphs(fn: Callable, settings: tuple[tuple[str, str], ...], device: str) -> _Graphs:
    key = (fn, settings, device)
    if key not in _CACHE:
        setattr(torch._dynamo.config, _limit_name(), max(_limit(), RECOMPILE_LIMIT))
        _CACHE[key] = _Graphs(fn, settings, device)
    return _CACHE[key]


class CompiledStepper:
    """A Runge-Kutta stepper whose full steps run compiled with their error ratio under `tolerance`
    (see the module's docstring), which `error` then returns for the same step; everything else is
    the stepper's own. A func that is not the solve's counted vector field (the tangent sweep's
    linearised func) steps eagerly, and an error under another norm is computed eagerly. For a
    tensor state the graph holds the user's func itself, and the stages are checked after it
    against the `layout` (StateLayout.derivative); a tuple state's checks are in its graph."""

    def __init__(self, stepper, settings: tuple[tuple[str, str], ...], device: torch.device, tolerance: Tolerance,
                 layout: StateLayout):
        self.stepper, self.tolerance, self.layout = stepper, tolerance, layout
        self._step = _graphs(_step, settings, device.type)
        # CUDA graphs write every replay's outputs into the same memory: a step's are copied out
        # before the next step replays, since the loop keeps them (outputs, stored states)
        self._copy = device.type == "cuda" and dict(settings).get("mode") in ("reduce-overhead", "max-autotune")
        self._estimate: tuple[list[Tensor], Tensor, Tensor] | None = None  # the last step's (ks, y1, error ratio)

    def __getattr__(self, name: str):
        return getattr(self.stepper, name)

    def step(self, func: Callable, span: Span, y: Tensor, carry: Tensor | None = None, full: bool = True):
        if not isinstance(func, CountedFunc):
            return self.stepper.step(func, span, y, carry, full)
        # (the reverse sweep's retaken steps need no error estimate)
        tolerance = self.tolerance if full and self.stepper.adaptive and not func.backward else None
        variant = (torch.is_grad_enabled(), carry is None, full, tolerance is None, y.shape, y.dtype, y.requires_grad,
                   span.t0.requires_grad)
        # what is learnt of a func is kept for the user's func, which every solve wraps anew
        user_func = func.func.__wrapped__
        traced = func.func if self.layout.is_tuple else user_func
        y1, ks, error = self._step(user_func, variant, self.stepper, traced, span, y, carry, full, tolerance)
        func.count(len(ks) - (carry is not None))
        if not self.layout.is_tuple:
            for k in ks:
                self.layout.derivative(k, span.t0)
        if self._copy:
            y1, ks, error = y1.clone(), [k.clone() for k in ks], None if error is None else error.clone()
        self._estimate = None if error is None else (ks, y1, error)
        return y1, ks

    def error(self, h: Tensor, ks: list[Tensor], norm: Callable[[Tensor], Tensor]) -> Tensor:
        estimate = self._estimate
        if (estimate is not None and ks is estimate[0] and isinstance(norm, WeightedNorm)
                and norm.tolerance is self.tolerance and norm.y1 is estimate[1]):
            return estimate[2]
        return self.stepper.error(h, ks, norm)
