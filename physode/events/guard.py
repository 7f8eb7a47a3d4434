"""Events and their guards: the functions g(t, y) whose zero crossings are the events, evaluated
together on the solver's flat state, and the rule that says when a guard has crossed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..solve import StateLayout

DIRECTIONS = (-1, 0, 1)


@dataclass(frozen=True)
class Event:
    """An event of a hybrid system: the time `t*` where the guard g(t, y) crosses zero.

    `guard(t, y)` returns a tensor with one value (y as func receives it). `direction` +1 counts
    only rising crossings (g from < 0 to >= 0), -1 only falling ones, 0 both. At an event the
    integration either goes on and records it (the default), stops (`terminal`), or restarts from
    `(t*, reset(t*, y-))` with the `reset` map (a transition, e.g. a bounce v+ = -e v-).
    """

    guard: Callable
    direction: int = 0
    terminal: bool = False
    reset: Callable | None = None

    def __post_init__(self):
        if not callable(self.guard):
            raise TypeError(f"Event guard must be callable as guard(t, y), got {type(self.guard).__name__}")
        if isinstance(self.direction, bool) or self.direction not in DIRECTIONS:
            raise ValueError(f"Event direction must be one of {DIRECTIONS} (falling, either, rising), "
                             f"got {self.direction!r}")
        if not isinstance(self.terminal, bool):
            raise TypeError(f"Event terminal must be True or False, got {self.terminal!r}")
        if self.reset is not None and not callable(self.reset):
            raise TypeError(f"Event reset must be callable as reset(t, y) or None, got {type(self.reset).__name__}")
        if self.terminal and self.reset is not None:
            raise ValueError("an Event is terminal (the integration stops) or has a reset map (it restarts), not both")


class Guards:
    """The guards of E events as one function of (t, flat y) returning E values.

    `names` (how errors call each guard), `directions`, `terminal` and `resets` have one entry per event.
    """

    def __init__(
        self, evaluate: Callable[[Tensor, object], Tensor], layout: StateLayout, names: Sequence[str],
        directions: Sequence[int], terminal: Sequence[bool], resets: Sequence[Callable | None],
    ):
        self._evaluate, self.layout, self.names = evaluate, layout, tuple(names)
        self.directions, self.terminal, self.resets = tuple(directions), tuple(terminal), tuple(resets)

    @classmethod
    def from_events(cls, events: Sequence[Event], layout: StateLayout) -> Guards:
        if isinstance(events, Event):
            events = [events]
        if not isinstance(events, (list, tuple)) or not events or not all(isinstance(e, Event) for e in events):
            raise TypeError(f"events must be a non-empty sequence of Event(guard, ...), got {events!r}")

        def evaluate(t, y):
            return torch.cat([_values(f"events[{i}].guard", e.guard(t, y), 1) for i, e in enumerate(events)])

        return cls(evaluate, layout, [f"events[{i}].guard" for i in range(len(events))],
                   [e.direction for e in events], [e.terminal for e in events], [e.reset for e in events])

    @classmethod
    def from_event_fn(cls, event_fn: Callable, layout: StateLayout, t0: Tensor, y0: Tensor) -> Guards:
        """torchdiffeq's event_fn: a tensor of any shape, each value a terminal event in either direction."""
        if not callable(event_fn):
            raise TypeError(f"event_fn must be callable as event_fn(t, y), got {type(event_fn).__name__}")
        with torch.no_grad():
            first = event_fn(t0.detach(), layout.unflatten(y0.detach()))
        count = _values("event_fn", first, None).numel()

        def evaluate(t, y):
            return _values("event_fn", event_fn(t, y), count, " as at t0")

        return cls(evaluate, layout, ["event_fn"] * count, [0] * count, [True] * count, [None] * count)

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        """The E guard values at (t, flat y), with whatever graph they have."""
        return self._evaluate(t, self.layout.unflatten(y))

    def values(self, t: Tensor, y: Tensor) -> list[float]:
        """The E guard values at (t, y) as numbers, refusing non-finite ones."""
        values = self(t, y).tolist()
        for name, value in zip(self.names, values):
            if not math.isfinite(value):
                raise ValueError(f"{name} returned a non-finite value {value} at t={t.item():.10g}")
        return values

    def crossed(self, before: Sequence[int], after: Sequence[int]) -> list[int]:
        """The events whose guard crossed between two states with guard signs (-1, 0, +1) `before` and `after`.

        A crossing is a change from a nonzero sign (reaching 0 counts), rising from -1 or falling from
        +1, and counts where the event's direction allows it. A sign of 0 means "not yet on a side"
        (a guard that starts at 0, or whose event has just fired): it cannot cross until it has one.
        """
        return [e for e, (s0, s1, d) in enumerate(zip(before, after, self.directions))
                if s0 != 0 and s1 != s0 and d in (0, -s0)]


def _values(name: str, value, count: int | None, since: str = "") -> Tensor:
    """A guard's return as a flat tensor of `count` values (any number when None); `since` says
    where that count comes from."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must return a tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must return a floating tensor, got {value.dtype}")
    if count is None and value.numel() == 0:
        raise ValueError(f"{name} returned an empty tensor")
    if count is not None and value.numel() != count:
        plural = "" if count == 1 else "s"
        raise ValueError(f"{name} must return {count} value{plural}{since}, got shape {tuple(value.shape)}")
    return value.reshape(-1)


def signs_of(values: Sequence[float]) -> list[int]:
    """-1, 0 or +1 for each value."""
    return [(v > 0) - (v < 0) for v in values]
