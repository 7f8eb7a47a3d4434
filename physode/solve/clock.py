"""Times of the step grid as functions of the anchor times, so that time gradients are exact."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


class Span(NamedTuple):
    """One step: from time t0 to time t1, of signed size h = t1 - t0."""

    t0: Tensor
    t1: Tensor
    h: Tensor


class Node(NamedTuple):
    """A grid time relative to the anchors of its segment a: (1 - s) A[a] + s A[a+1] + offset."""

    s: float
    offset: float = 0.0


SEGMENT_START, SEGMENT_END = Node(0.0), Node(1.0)


@dataclass(frozen=True)
class Stops:
    """Times the steps must end on besides the output times: `times` (torchdiffeq's step_t, and a
    fixed-step grid) and `jumps` (its jump_t), where the vector field may be discontinuous. A step
    ending on a jump evaluates f there from before it, the next step from after it (the adjacent
    floating-point numbers, so that a discontinuous f is sampled on the side each step lies on);
    with `every_node` every step does so (torchdiffeq's perturb=True for fixed grids)."""

    times: tuple[float, ...] = ()
    jumps: tuple[float, ...] = ()
    every_node: bool = False


class Clock:
    """Step times tied to anchors, so that derivatives with respect to the output times are exact.

    The anchors are t[0] and t[-1] (or every output time, when the solver lands on them), and the
    stop times inside the span. An adaptive method's nodes sit at fixed fractions s of their
    segment (the controller picks s and is not differentiated); a fixed-step method's nodes sit at
    fixed offsets k h from the start of their segment, its last step ending on the next anchor.
    Derivatives with respect to t then flow through every step's (t0, t1) and the interpolation
    parameter theta = (t_k - t0) / h. `anchor_outputs[a]` is the output index of anchor a, or None
    for a stop that is not an output time.
    """

    def __init__(self, times: Tensor, land: bool, stops: Stops = Stops()):
        last = len(times) - 1
        self.times = times
        self.time_values = times.tolist()
        outputs = list(range(last + 1)) if land else sorted({0, last})
        t0, t1 = self.time_values[0], self.time_values[-1]
        direction = 1.0 if t1 >= t0 else -1.0
        at = {self.time_values[k]: k for k in outputs}
        inside = {t for t in (*stops.times, *stops.jumps) if 0 < (t - t0) * direction < (t1 - t0) * direction}
        self.anchor_values = sorted(set(at) | inside, key=lambda t: t * direction)
        self.anchor_outputs = [at.get(t) for t in self.anchor_values]
        self.jumps = {a for a, t in enumerate(self.anchor_values) if t in stops.jumps}
        self.every_node = stops.every_node
        self.direction = direction
        self._recent: dict[tuple[int, Node, bool], Tensor] = {}  # the nodes of the last span
        # outputs strictly inside a segment, found by dense output
        self.interior = range(0) if land else range(1, max(last, 1))

    def node(self, segment: int, t: float, placement: str) -> Node:
        """The node at time t inside a segment: at its fraction of the segment ("fraction", for
        adaptive steps) or at its offset from the segment's start ("offset", for constant steps)."""
        a0, a1 = self.anchor_values[segment], self.anchor_values[segment + 1]
        return Node((t - a0) / (a1 - a0)) if placement == "fraction" else Node(0.0, t - a0)

    def scale(self, segment: int, node: Node) -> float:
        """The magnitude of the numbers a node's time is made of, which bounds its round-off."""
        a0, a1 = self.anchor_values[segment], self.anchor_values[segment + 1]
        return abs(a0) * (1 - node.s) + abs(a1) * node.s + abs(node.offset)

    def span(self, segment: int, start: Node, end: Node) -> Span:
        """The step between two nodes of a segment; exactly on the anchors at s = 0 and s = 1.

        Consecutive steps share a node (forward or in reverse), so the last span's node tensors
        are reused rather than computed again (when made in the same grad mode).
        """
        graph = torch.is_grad_enabled()
        keys = [(*_key(segment, start), graph), (*_key(segment, end), graph)]
        t0, t1 = (self._recent.get(key) for key in keys)
        if t0 is None or t1 is None:
            a0, a1 = self.anchor(segment), self.anchor(segment + 1)
            t0 = _time(a0, a1, start) if t0 is None else t0
            t1 = _time(a0, a1, end) if t1 is None else t1
        self._recent = dict(zip(keys, (t0, t1)))
        if self.every_node or self.jumps:
            t0 = aside(t0, self.direction) if self._at_jump(segment, start) else t0
            t1 = aside(t1, -self.direction) if self._at_jump(segment, end) else t1
        return Span(t0, t1, t1 - t0)

    def anchor(self, a: int) -> Tensor:
        """Anchor a's time: the output time itself (with its graph), or a stop time."""
        k = self.anchor_outputs[a]
        return self.times[k] if k is not None else self.times.new_tensor(self.anchor_values[a])

    def jumps_after(self, segment: int, end: Node) -> bool:
        """Whether a step ending on this node ends on a jump (so f there is taken again, from after it)."""
        return self.every_node or (end == SEGMENT_END and segment + 1 in self.jumps)

    def _at_jump(self, segment: int, node: Node) -> bool:
        return self.every_node or (node == SEGMENT_START and segment in self.jumps) or self.jumps_after(segment, node)

    def theta(self, outputs: slice, span: Span) -> Tensor:
        """Interpolation parameters of the output times self.times[outputs] in a step."""
        return (self.times[outputs] - span.t0) / span.h


def aside(t: Tensor, direction: float) -> Tensor:
    """The floating-point number next to t in `direction`, with t's derivative."""
    value = t.detach()
    return t + (torch.nextafter(value, value.new_tensor(direction * math.inf)) - value)


def _key(segment: int, node: Node) -> tuple[int, Node]:
    """The end of a segment is the start of the next."""
    return (segment + 1, SEGMENT_START) if node == SEGMENT_END else (segment, node)


def _time(a0: Tensor, a1: Tensor, node: Node) -> Tensor:
    t = a0 if node.s == 0.0 else a1 if node.s == 1.0 else a0 * (1.0 - node.s) + a1 * node.s
    return t + node.offset if node.offset else t
