"""The record of accepted steps, 12 bytes a step, so that keeping it does not grow memory much."""

from __future__ import annotations

from array import array

from .clock import SEGMENT_END, SEGMENT_START, Node

_NONE = slice(0, 0)


class StepRecord:
    """Accepted step i runs inside anchor segment(i) from node start(i) to node end(i).

    Only each step's segment and the position of its end are stored (its fraction s of the segment
    when `placement` is "fraction", its offset from the segment's start when it is "offset"); a
    step ends its segment when the next step lies in another one, and starts where the previous
    one ended. `interior(i)` is the slice of output indices interpolated inside step i.
    """

    def __init__(self, placement: str):
        self.by_fraction = placement == "fraction"
        self._segment = array("i")
        self._end = array("d")
        self._interior: dict[int, slice] = {}

    def __len__(self) -> int:
        return len(self._segment)

    def append(self, segment: int, end: Node, interior: slice) -> None:
        self._segment.append(segment)
        self._end.append(end.s if self.by_fraction else end.offset)
        if interior.stop > interior.start:
            self._interior[len(self._segment) - 1] = interior

    def segment(self, i: int) -> int:
        return self._segment[i]

    def ends_segment(self, i: int) -> bool:
        return i == len(self._segment) - 1 or self._segment[i + 1] != self._segment[i]

    def end(self, i: int) -> Node:
        if self.ends_segment(i):
            return SEGMENT_END
        return Node(self._end[i]) if self.by_fraction else Node(0.0, self._end[i])

    def start(self, i: int) -> Node:
        return SEGMENT_START if i == 0 or self.ends_segment(i - 1) else self.end(i - 1)

    def interior(self, i: int) -> slice:
        return self._interior.get(i, _NONE)
