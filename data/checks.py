"""Argument checks shared by the dataset generators: clear errors naming the argument."""

from __future__ import annotations

import math
import numbers


def count(name: str, value, minimum: int = 1) -> int:
    expected = "a positive" if minimum == 1 else "a non-negative"
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be {expected} integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {expected} integer, got {value}")
    return int(value)


def real(name: str, value, *, positive: bool) -> float:
    expected = "a positive" if positive else "a non-negative"
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be {expected} finite number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {expected} finite number, got {value}")
    return float(value)
