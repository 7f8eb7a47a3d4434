"""Checks of plain values at the public boundary: counts, numbers, fractions, flags, tolerances
of a fit, and Datasets."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import xarray as xr


def check_count(name: str, value, minimum: int = 1, allow_none: bool = False) -> int | None:
    """An integer >= minimum (1: "positive", 0: "non-negative"), or None where allowed."""
    if value is None and allow_none:
        return None
    expected = "a positive" if minimum == 1 else "a non-negative"
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be {expected} integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {expected} integer, got {value}")
    return int(value)


def check_real(name: str, value, *, positive: bool) -> float:
    """A finite number, > 0 (`positive`) or >= 0."""
    expected = "a positive" if positive else "a non-negative"
    if not is_real(value):
        raise TypeError(f"{name} must be {expected} finite number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {expected} finite number, got {value}")
    return float(value)


def check_fraction(name: str, value, *, closed: bool = False) -> float:
    """A number in (0, 1), or in (0, 1] when `closed`."""
    interval = "(0, 1]" if closed else "(0, 1)"
    if not is_real(value):
        raise TypeError(f"{name} must be a fraction in {interval}, got {type(value).__name__} {value!r}")
    if not (0 < value < 1 or (closed and value == 1)):
        raise ValueError(f"{name} must be a fraction in {interval}, got {value}")
    return float(value)


def check_fit_tolerance(name: str, value) -> float:
    """A least-squares stopping tolerance (ftol, xtol, gtol): a number in [0, 1), 0 turning its test off."""
    if not is_real(value):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__} {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1) (0 turns its test off), got {value}")
    return float(value)


def check_flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_dataset(ds, name: str = "data", dims: tuple[str, ...] = ("series", "time")) -> xr.Dataset:
    """An xarray.Dataset with the dimensions `dims` (and a 'time' coordinate where 'time' is one)."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"{name} must be an xarray.Dataset, got {type(ds).__name__}")
    for dim in dims:
        if dim not in ds.dims:
            raise ValueError(f"{name} has no {dim!r} dimension (dims: {list(ds.dims)}); "
                             "physode datasets have dims ('series', 'time', *state dims)")
    if "time" in dims and "time" not in ds.coords:
        raise ValueError(f"{name} has no 'time' coordinate")
    return ds


def check_real_array(name: str, value, shape: tuple[int, ...] | None = None, *, finite: bool = False) -> np.ndarray:
    """`value` (a number, a sequence, an array or a tensor) as a float64 array of real numbers, of
    `shape` where given, and `finite` where asked; TypeError or ValueError naming `name` otherwise."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy() if value.dtype != torch.bfloat16 else value.detach().cpu().float().numpy()
    try:
        array = None if isinstance(value, (str, bytes)) else np.asarray(value)
    except ValueError:  # a ragged sequence
        array = None
    if array is None or array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number or an array of them, got {type(value).__name__} {value!r}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array.astype(float)


def check_time_array(name: str, value, *, minimum: int = 1, increasing: bool = False) -> np.ndarray:
    """Times: a 1-D float array of at least `minimum` finite values, strictly increasing if asked."""
    times = check_real_array(name, value)
    if times.ndim != 1 or len(times) < minimum:
        raise ValueError(f"{name} must be a 1-D array of at least {minimum} time{'s' if minimum > 1 else ''}, "
                         f"got shape {times.shape}")
    if not np.isfinite(times).all() or (increasing and np.any(np.diff(times) <= 0)):
        order = " and strictly increasing" if increasing else ""
        raise ValueError(f"{name} must be finite{order}, got {times.tolist()}")
    return times
