"""Times of the step grid as functions of the anchor times, so that time gradients are exact."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class Span(NamedTuple):
    """One step: from time t0 to time t1, of signed size h = t1 - t0."""

    t0: Tensor
    t1: Tensor
    h: Tensor


class Clock:
    """Step times tied to anchors: a node at fraction s of segment a is (1 - s) A[a] + s A[a+1].

    The anchors are t[0] and t[-1] (or every output time, when the solver lands on them). The step
    controller only picks the fractions s; derivatives with respect to the output times then flow
    through every step's (t, h) and through the interpolation parameter theta = (t_k - t_i) / h_i.
    """

    def __init__(self, times: Tensor, land: bool):
        last = len(times) - 1
        self.times = times
        self.time_values = times.tolist()
        self.anchor_outputs = list(range(last + 1)) if land else sorted({0, last})
        self.anchor_values = [self.time_values[k] for k in self.anchor_outputs]
        # outputs strictly inside a segment, found by dense output
        self.interior = range(0) if land else range(1, max(last, 1))

    def span(self, segment: int, s0: float, s1: float) -> Span:
        """The step from fraction s0 to fraction s1 of a segment; exact at the anchors."""
        start = self.times[self.anchor_outputs[segment]]
        end = self.times[self.anchor_outputs[segment + 1]]
        t0 = start * (1.0 - s0) + end * s0
        t1 = start * (1.0 - s1) + end * s1
        return Span(t0, t1, t1 - t0)

    def theta(self, outputs: slice, span: Span) -> Tensor:
        """Interpolation parameters of the output times self.times[outputs] in a step."""
        return (self.times[outputs] - span.t0) / span.h
