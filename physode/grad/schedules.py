"""Schedules of the reverse sweep: which states the forward pass keeps, and how the backward
pass gets every state back in reverse.

A policy's `keep(i, y, v)` sees every accepted node i = 0..N of the forward pass (v is the carry
where it is state, ALF's velocity, else None); `reversed_states(n, replay)` yields (i, state_i)
for i = n-1, ..., 0, using `replay.advance` (one step forward, no graph) or `replay.inverse` (one
exact inverse step).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from math import comb
from typing import Protocol

import torch
from torch import Tensor

from ..solve import Reversible

StoredState = tuple[Tensor, Tensor | None]  # (y_i, carry_i where it is state)


class Replay(Protocol):
    def advance(self, i: int, state: StoredState) -> StoredState: ...

    def inverse(self, i: int, state: StoredState) -> StoredState: ...


class StoreAll:
    """Every accepted state (the Adaptive Checkpoint Adjoint): no recomputation, O(N) states."""

    def __init__(self):
        self.states: list[StoredState] = []

    def keep(self, i: int, y: Tensor, v: Tensor | None) -> None:
        self.states.append((y, v))

    def reversed_states(self, n: int, replay: Replay) -> Iterator[tuple[int, StoredState]]:
        for i in reversed(range(n)):
            yield i, self.states[i]


class Reconstruct:
    """Only the last state; each earlier one is rebuilt by the stepper's exact inverse (MALI).

    The initial state is the caller's input and is held anyway: once the sweep reaches it, the
    rebuilt state is compared with it, and a reconstruction that lost more than eps^(1/3)
    (relative: 5e-3 in float32, 6e-6 in float64) is reported by a RuntimeWarning, since the
    gradient was then computed along states that far from the forward pass's.
    """

    def __init__(self, stepper: Reversible):
        self.stepper = stepper

    def keep(self, i: int, y: Tensor, v: Tensor | None) -> None:
        if i == 0:
            self.first = (y, v)
        self.last = (y, v)

    def reversed_states(self, n: int, replay: Replay) -> Iterator[tuple[int, StoredState]]:
        state = self.last
        for i in reversed(range(n)):
            state = replay.inverse(i, state)
            yield i, state
        if n:
            self._check(state, n)

    def _check(self, rebuilt: StoredState, n: int) -> None:
        errors = [_relative(r, f) for r, f in zip(rebuilt, self.first) if f is not None]
        error = max(errors)
        if not error <= torch.finfo(rebuilt[0].dtype).eps ** (1 / 3):  # NaN included
            growth = self.stepper.inverse_growth
            cause = (f"each inverse step of {self.stepper!r} amplifies round-off by {growth:.3g}; "
                     f"{self.stepper.inverse_hint}, shorten the solve" if growth > 1 else
                     f"round-off accumulated in {rebuilt[0].dtype}; use float64")
            warnings.warn(
                f"gradient='mali': rebuilding the initial state through {n} inverse steps lost accuracy "
                f"(relative error {error:.2e}), so the gradient is unreliable: {cause}, or use gradient='aca'",
                RuntimeWarning, stacklevel=2,
            )


def _relative(x: Tensor, reference: Tensor) -> float:
    scale = reference.abs().max().item()
    return ((x - reference).abs().max().item() / scale) if scale > 0 else (x - reference).abs().max().item()


class Uniform:
    """At most `budget` evenly spaced states from the forward pass; the backward pass recomputes
    the states of one interval between them at a time (each step once more). Holds up to
    budget + N / budget states at once; the stride doubles whenever the budget would be exceeded.
    """

    def __init__(self, budget: int):
        self.budget, self.stride, self.kept = budget, 1, {}

    def keep(self, i: int, y: Tensor, v: Tensor | None) -> None:
        if i % self.stride:
            return
        self.kept[i] = (y, v)
        if len(self.kept) > self.budget:
            self.stride *= 2
            self.kept = {j: s for j, s in self.kept.items() if j % self.stride == 0}

    def reversed_states(self, n: int, replay: Replay) -> Iterator[tuple[int, StoredState]]:
        starts = sorted(j for j in self.kept if j < n)
        for start, stop in reversed(list(zip(starts, [*starts[1:], n]))):
            interval = [self.kept[start]]
            for i in range(start, stop - 1):
                interval.append(replay.advance(i, interval[-1]))
            for i in reversed(range(start, stop)):
                yield i, interval.pop()


class Binomial:
    """All states while they fit the budget; beyond it, the initial state only, and the backward
    pass holds at most `budget` more states and advances by the binomial checkpointing schedule (Griewank, "Achieving logarithmic growth of temporal and
    spatial complexity in reverse automatic differentiation", 1992; Griewank & Walther, revolve,
    ACM TOMS 2000), which minimises the number of recomputed steps, r N - C(budget + 1 + r,
    budget + 2) for the smallest r with C(budget + 1 + r, budget + 1) >= N.
    """

    def __init__(self, budget: int):
        self.budget, self.kept, self.overflowed = budget, [], False

    def keep(self, i: int, y: Tensor, v: Tensor | None) -> None:
        if self.overflowed:
            return
        self.kept.append((y, v))
        if len(self.kept) > self.budget + 1:
            del self.kept[1:]
            self.overflowed = True

    def reversed_states(self, n: int, replay: Replay) -> Iterator[tuple[int, StoredState]]:
        if not self.overflowed:
            del self.kept[n:]
            for i in reversed(range(n)):
                yield i, self.kept.pop()
            return
        pending = [(0, n, self.kept.pop(), self.budget)]  # (first, stop, state at first, free slots)
        while pending:
            first, stop, state, slots = pending.pop()
            length = stop - first
            if slots >= length - 1:
                interval = [state]
                for i in range(first, stop - 1):
                    interval.append(replay.advance(i, interval[-1]))
                for i in reversed(range(first, stop)):
                    yield i, interval.pop()
            elif slots == 0:
                for i in reversed(range(first, stop)):
                    current = state
                    for j in range(first, i):
                        current = replay.advance(j, current)
                    yield i, current
            else:
                middle = first + binomial_split(length, slots)
                checkpoint = state
                for j in range(first, middle):
                    checkpoint = replay.advance(j, checkpoint)
                pending.append((first, middle, state, slots))
                pending.append((middle, stop, checkpoint, slots - 1))


def binomial_split(n: int, slots: int) -> int:
    """Steps to advance before the next checkpoint, to reverse n steps with `slots` free states at
    the least recomputation; of the optimal choices, the furthest."""
    r = 0
    while comb(slots + 1 + r, slots + 1) < n:
        r += 1
    return min(n - 1, comb(slots + r, slots + 1), n - comb(slots + r - 1, slots))


SCHEDULES = {"binomial": Binomial, "uniform": Uniform}
