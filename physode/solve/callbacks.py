"""torchdiffeq's step callbacks, read from the user's func."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from .layout import StateLayout

NAMES = ("callback_step", "callback_accept_step", "callback_reject_step")


@dataclass(frozen=True)
class Callbacks:
    """Called as torchdiffeq calls them: `step(t0, y0, dt)` before every attempted step, then
    `accept(t0, y0, dt)` or `reject(t0, y0, dt)` once the step is judged; y0 in the user's layout
    (a tuple for a tuple state), dt signed."""

    step: Callable | None = None
    accept: Callable | None = None
    reject: Callable | None = None

    @classmethod
    def of(cls, func, layout: StateLayout, suffix: str = "") -> Callbacks | None:
        """The callbacks func defines (named callback_step{suffix}, ...), or None if it has none."""
        found = [getattr(func, name + suffix, None) for name in NAMES]
        if not any(callable(c) for c in found):
            return None
        return cls(*(_on_user_state(c, layout) if callable(c) else None for c in found))

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
