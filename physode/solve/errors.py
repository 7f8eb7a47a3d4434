"""The exception raised when an integration cannot go on."""

from __future__ import annotations


class SolverError(RuntimeError):
    """The integration stopped: `reason` says why, at time `t` after `step` accepted steps.

    Raised for a non-finite state, a step size that underflowed, or more than `max_steps` steps.
    """

    def __init__(self, reason: str, t: float, step: int, hint: str = ""):
        self.reason, self.t, self.step = reason, t, step
        message = f"{reason} at t={t:.10g} after {step} accepted steps"
        super().__init__(f"{message}; {hint}" if hint else message)
