"""Times of the step grid as functions of the anchor times, so that time gradients are exact."""

from __future__ import annotations

from torch import Tensor


class Clock:
    """Step times tied to anchors: a node at fraction s of segment a is A[a] + s (A[a+1] - A[a]).

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

    def span(self, segment: int, s0: float, s1: float) -> tuple[Tensor, Tensor]:
        """(t, h) of the step from fraction s0 to fraction s1 of a segment."""
        start = self.times[self.anchor_outputs[segment]]
        width = self.times[self.anchor_outputs[segment + 1]] - start
        return start + s0 * width, (s1 - s0) * width

    def theta(self, outputs: slice, t: Tensor, h: Tensor) -> Tensor:
        """Interpolation parameters of the output times self.times[outputs] in the step (t, h)."""
        return (self.times[outputs] - t) / h
