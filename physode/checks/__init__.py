"""Every check at the public boundary, in one place: a wrong type raises TypeError, a wrong value
ValueError, and the message names the argument and what was expected."""

from .arguments import (
    check_declared, check_params, check_precision, check_state, check_tangents, check_times, check_tolerance,
    untracked_tensors,
)
from .options import (
    FORWARD_ONLY, MAX_STEPS, OPTIONS, Settings, check_callbacks, check_gradient, check_method, check_options,
    check_pairing,
)
from .values import (
    check_count, check_dataset, check_fit_tolerance, check_flag, check_fraction, check_real, check_real_array,
    check_time_array, is_real,
)

__all__ = [
    "FORWARD_ONLY", "MAX_STEPS", "OPTIONS", "Settings", "check_callbacks", "check_count", "check_dataset",
    "check_declared",
    "check_fit_tolerance", "check_flag", "check_fraction", "check_gradient", "check_method", "check_options",
    "check_pairing", "check_params", "check_precision", "check_real", "check_real_array", "check_state",
    "check_tangents", "check_time_array", "check_times", "check_tolerance",
    "is_real", "untracked_tensors",
]
