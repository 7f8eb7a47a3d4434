"""torchdiffeq's step callbacks, read from the user's func."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from torch import Tensor

from .layout import StateLayout

NAMES = ("callback_step", "callback_accept_step", "callback_reject_step")
ADJOINT_NAMES = tuple(name + "_adjoint" for name in NAMES)


@dataclass(frozen=True)
class Callbacks:
    """Called as torchdiffeq calls them: `step(t0, y0, dt)` before every attempted step, then
    `accept(t0, y0, dt)` or `reject(t0, y0, dt)` once the step is judged; y0 in the user's layout
    (a tuple for a tuple state), dt signed; fixed steps are not judged, so they call `step` only.
    `adjoint` holds the func's `callback_*_adjoint` callbacks by name, as torchdiffeq's adjoint
    calls them on its backward solve; `retrace` the same on the user's state, for a backward sweep
    that retraces the forward steps (every one of them accepted)."""

    step: Callable | None = None
    accept: Callable | None = None
    reject: Callable | None = None
    adjoint: dict[str, Callable] = field(default_factory=dict)
    retrace: dict[str, Callable] = field(default_factory=dict)

    @classmethod
    def of(cls, func, layout: StateLayout) -> Callbacks | None:
        """The callbacks func defines, or None if it has none."""
        found = [getattr(func, name, None) for name in NAMES]
        adjoint = {name: getattr(func, name) for name in ADJOINT_NAMES if callable(getattr(func, name, None))}
        if not adjoint and not any(callable(c) for c in found):
            return None
        retrace = {name: _on_user_state(c, layout) for name, c in adjoint.items()}
        return cls(*(_on_user_state(c, layout) if callable(c) else None for c in found), adjoint=adjoint, retrace=retrace)

    def retraced(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        """A forward step from (t0, y0) of size dt, retraced by a backward sweep: callback_step_adjoint,
        then callback_accept_step_adjoint."""
        for name in ADJOINT_NAMES[:2]:
            call = self.retrace.get(name)
            if call is not None:
                call(t0, y0, dt)

    def by_name(self) -> dict[str, Callable]:
        """Every callback under torchdiffeq's name: the forward ones on the solver's flat state."""
        forward = dict(zip(NAMES, (self.before, partial(self.judged, True), partial(self.judged, False))))
        return {**forward, **self.adjoint}

    def before(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        if self.step is not None:
            self.step(t0, y0, dt)

    def judged(self, accepted: bool, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        call = self.accept if accepted else self.reject
        if call is not None:
            call(t0, y0, dt)


def _on_user_state(callback: Callable, layout: StateLayout) -> Callable:
    if not layout.is_tuple:
        return callback
    return lambda t0, y0, dt: callback(t0, layout.unflatten(y0), dt)
