"""The exception raised when an integration cannot go on, and where a warning points."""

from __future__ import annotations

import sys
from pathlib import Path


class SolverError(RuntimeError):
    """The integration stopped: `reason` says why, at time `t` after `step` accepted steps (None
    where the solver that stopped, torchdiffeq's, does not say).

    Raised for a non-finite state, a step size that underflowed, or more than `max_steps` steps.
    """

    def __init__(self, reason: str, t: float | None, step: int | None, hint: str = ""):
        self.reason, self.t, self.step = reason, t, step
        message = reason if t is None else f"{reason} at t={t:.10g} after {step} accepted steps"
        super().__init__(f"{message}; {hint}" if hint else message)


def caller_stacklevel() -> int:
    """The stacklevel of the first frame outside physode, so that a warning points at the user's call."""
    package = str(Path(__file__).resolve().parent.parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    return level
