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
from .stats import CountedFunc

SETTINGS = ("mode", "backend")  # the keyword arguments of torch.compile that options['compile'] may set


def _step(stepper, func: Callable, span: Span, y: Tensor, carry: Tensor | None, full: bool,
          tolerance: Tolerance | None):
    """The step, and its error ratio under the tolerance where one is given."""
    y1, ks = stepper.step(func, span, y, carry, full)
    return y1, ks, None if tolerance is None else stepper.error(span.h, ks, tolerance.weigh(y, y1))


class _Graphs:
    """`fn` compiled with the settings: in one graph where func allows it, else with graph breaks
    (warned once per func), else eagerly (warned once per func). The choice is made at a func's
    first call."""

    def __init__(self, fn: Callable, settings: tuple[tuple[str, str], ...], device: str):
        self.fn = fn
        arguments = dict(settings)
        if device == "cpu" and "mode" not in arguments and arguments.get("backend", "inductor") == "inductor":
            arguments["options"] = {"cpp_wrapper": True}  # the kernels' calls from C++: less overhead per step
        self.whole = torch.compile(fn, fullgraph=True, dynamic=False, **arguments)
        self.broken = torch.compile(fn, dynamic=False, **arguments)
        self.chosen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # func -> its compiled fn
        self.recompiles: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # func -> compilations after its first

    def __call__(self, func: Callable, *args):
        chosen = self.chosen.get(func)
        if chosen is not None:
            if chosen is self.fn:
                return chosen(*args)
            graphs = counters["stats"]["unique_graphs"]
            out = chosen(*args)
            if counters["stats"]["unique_graphs"] != graphs:
                self._recompiled(func)
            return out
        try:
            out, chosen = self.whole(*args), self.whole
        except Exception as whole_error:  # noqa: BLE001 - a graph break, or a failure of the compiler
            try:
                out, chosen = self.broken(*args), self.broken
            except Exception as error:  # noqa: BLE001
                out, chosen = self._eager(error, args)
            else:
                warnings.warn(f"options['compile']: func breaks the compiled graph, so each step runs as several "
                              f"graphs with Python in between: {_first_line(whole_error)}", stacklevel=caller_stacklevel())
        self.chosen[func] = chosen
        return out

    def _recompiled(self, func: Callable) -> None:
        """Count a compilation for func after its first; past RECOMPILES, func runs eagerly."""
        self.recompiles[func] = self.recompiles.get(func, 0) + 1
        if self.recompiles[func] > RECOMPILES:
            self.chosen[func] = self.fn
            warnings.warn(f"options['compile']: func was compiled {RECOMPILES} more times, so it runs eagerly from now "
                          "on: a Python number it reads (a counter attribute, say) or the shapes change from call to "
                          "call; keep numbers that change in tensors", stacklevel=caller_stacklevel())

    def _eager(self, error: Exception, args) -> tuple[object, Callable]:
        warnings.warn(f"options['compile']: func could not be compiled, so it runs eagerly: "
                      f"{type(error).__name__}: {_first_line(error)}", stacklevel=caller_stacklevel())
        return self.fn(*args), self.fn


def _first_line(error: Exception) -> str:
    """The error's first line, with the next one where the first ends in a colon."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    return " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]


_CACHE: dict[tuple, _Graphs] = {}
# A step is compiled once for each combination of grad mode, first stage given or not, full or not
# and which inputs require grad, for each func, shape and dtype: more than torch's default limit of
# graphs per function (8) in a process that fits several models.
RECOMPILE_LIMIT = 64
# Compilations of one func after its first before it is given up for eager: the variants above for
# a few shapes; a func that reads a changing Python number is compiled again at every step.
RECOMPILES = 16


def _graphs(fn: Callable, settings: tuple[tuple[str, str], ...], device: str) -> _Graphs:
    key = (fn, settings, device)
    if key not in _CACHE:
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # (torch < 2.6)
        setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
        _CACHE[key] = _Graphs(fn, settings, device)
    return _CACHE[key]


class CompiledStepper:
    """A Runge-Kutta stepper whose full steps run compiled with their error ratio under `tolerance`
    (see the module's docstring), which `error` then returns for the same step; everything else is
    the stepper's own. A func that is not the solve's counted vector field (the tangent sweep's
    linearised func) steps eagerly, and an error under another norm is computed eagerly."""

    def __init__(self, stepper, settings: tuple[tuple[str, str], ...], device: torch.device, tolerance: Tolerance):
        self.stepper, self.tolerance = stepper, tolerance
        self._step = _graphs(_step, settings, device.type)
        # CUDA graphs write every replay's outputs into the same memory: a step's are copied out
        # before the next step replays, since the loop keeps them (outputs, stored states)
        self._copy = dict(settings).get("mode") == "reduce-overhead"
        self._estimate: tuple[list[Tensor], Tensor, Tensor] | None = None  # the last step's (ks, y1, error ratio)

    def __getattr__(self, name: str):
        return getattr(self.stepper, name)

    def step(self, func: Callable, span: Span, y: Tensor, carry: Tensor | None = None, full: bool = True):
        if not isinstance(func, CountedFunc):
            return self.stepper.step(func, span, y, carry, full)
        tolerance = self.tolerance if full and self.stepper.adaptive else None
        y1, ks, error = self._step(func.func, self.stepper, func.func, span, y, carry, full, tolerance)
        func.count(len(ks) - (carry is not None))
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
