"""Trajectory data as xarray Datasets: conventions, validation, conversion and netCDF/HDF5 files.

A dataset has dims `series` and `time` first, then each state's own dims; its variables are named
after a System's states; NaN means "not observed", so irregular sampling and partially observed
variables are masks. Files are netCDF4 (HDF5) written and read through h5py (the h5netcdf
engine); nothing is ever pickled.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from ..checks import check_dataset
from ..files import FileKind, check_target, open_hdf5, write_atomic

NETCDF = FileKind("a readable netCDF4/HDF5 data set (as written by physode.data.save or xarray's to_netcdf)")


def validate(ds, system) -> None:
    """Raise a ValueError naming the problem if `ds` cannot serve as observations of `system`."""
    name = type(system).__name__
    check_dataset(ds, "observations")
    check_nonempty(ds)
    time = time_coordinate(ds)
    if not np.all(np.isfinite(time)) or np.any(np.diff(time) <= 0):
        raise ValueError("the dataset's time coordinate must be finite and strictly increasing")
    states = type(system).states()
    present = [s for s in type(system).observed_states if s in ds.data_vars]
    missing = [s for s in type(system).observed_states if s not in ds.data_vars]
    if missing:
        raise ValueError(f"the dataset lacks the observed state(s) {missing} of {name} (variables: {list(ds.data_vars)})")
    for state in present:
        expected = ("series", "time", *states[state].dims)
        var = ds[state]
        if var.dims != expected:
            raise ValueError(f"variable {state!r} has dims {var.dims}; {name} expects {expected}")
        shape = tuple(var.shape[2:])
        if shape != states[state].shape:
            raise ValueError(f"variable {state!r} has state shape {shape}; {name}.{state} has shape {states[state].shape}")
    observed_any = np.zeros(ds.sizes["series"], dtype=bool)
    for state in present:
        values = observed_values(ds, state)
        observed_any |= np.isfinite(values).reshape(values.shape[0], -1).any(axis=1)
    if not observed_any.all():
        empty = ds["series"].values[~observed_any].tolist() if "series" in ds.coords else np.flatnonzero(~observed_any).tolist()
        raise ValueError(f"series {empty} have no observation at all (every value is NaN)")


def check_nonempty(ds) -> None:
    """ValueError if the Dataset has no series or no time point."""
    for dim in ("series", "time"):
        if ds.sizes[dim] == 0:
            raise ValueError(f"the dataset is empty: its {dim!r} dimension has length 0")


def time_coordinate(ds) -> np.ndarray:
    """The time coordinate as float64; TypeError for dates and other non-numbers, which physode
    would otherwise read as nanoseconds or fail on deep inside."""
    time = ds["time"].values
    if time.dtype.kind in "mM":
        raise TypeError(f"the dataset's time coordinate holds {time.dtype} values; physode needs numbers. Convert "
                        "it, e.g. ds.assign_coords(time=(ds.time - ds.time[0]) / np.timedelta64(1, 's')) for seconds")
    if time.dtype.kind not in "iuf":
        raise TypeError(f"the dataset's time coordinate holds {time.dtype} values; physode needs real numbers")
    return time.astype(float)


def observed_values(ds, name: str) -> np.ndarray:
    """Variable `name` as float64, NaN where not observed; TypeError for non-numbers, ValueError for
    infinite values (which are neither an observation nor the mark of a missing one)."""
    values = ds[name].values
    if values.dtype.kind not in "iuf":
        raise TypeError(f"variable {name!r} holds {values.dtype} values; observations are real numbers "
                        "(NaN where not observed)")
    values = values.astype(float)
    if np.isinf(values).any():
        raise ValueError(f"variable {name!r} has {int(np.isinf(values).sum())} infinite values; observations "
                         "must be finite (NaN marks a value that was not observed)")
    return values


def observations(ds, system, dtype: torch.dtype, device=None) -> tuple[Tensor, dict[str, Tensor]]:
    """(times (T,), {observed state: values (series, T, *shape) with NaN where unobserved})."""
    validate(ds, system)
    time = torch.as_tensor(time_coordinate(ds), dtype=dtype, device=device)
    values = {s: torch.as_tensor(np.array(ds[s].values, dtype=float), dtype=dtype, device=device)
              for s in type(system).observed_states}
    return time, values


def to_dataset(system, times: Tensor, values: Mapping[str, Tensor], *, series=None) -> xr.Dataset:
    """A Dataset (series, time, *dims) of state values (tensors (series, T, *shape))."""
    ds = _dataset(system, values, ("series", "time"), series)
    return ds.assign_coords(time=times.detach().cpu().numpy())


def state_dataset(system, values: Mapping[str, Tensor], *, series=None) -> xr.Dataset:
    """A Dataset (series, *dims) of one state per series (tensors (series, *shape))."""
    return _dataset(system, values, ("series",), series)


def _dataset(system, values: Mapping[str, Tensor], leading: tuple[str, ...], series) -> xr.Dataset:
    states = type(system).states()
    variables = {}
    for name, value in values.items():
        attrs = {k: v for k, v in (("units", states[name].units), ("description", states[name].description)) if v}
        variables[name] = xr.Variable((*leading, *states[name].dims), value.detach().cpu().numpy(), attrs)
    count = next(iter(values.values())).shape[0]
    return xr.Dataset(variables, coords={"series": np.arange(count) if series is None else np.asarray(series)})


def initial_state_tensors(system, initial, series, dtype, device) -> tuple[dict[str, Tensor], np.ndarray | None]:
    """A full initial state (tensors (series, *shape)) from a mapping or a Dataset with `series`."""
    states = type(system).states()
    if isinstance(initial, xr.Dataset):
        if series is None and "series" in initial.coords:
            series = initial["series"].values
        if "time" in initial.dims:
            initial = initial.isel(time=0)
        initial = as_mapping(initial)
    if not isinstance(initial, Mapping):
        raise TypeError(f"initial_state must be a mapping of state names to arrays, or a Dataset, got {type(initial).__name__}")
    missing = [name for name in states if name not in initial]
    if missing:
        raise ValueError(f"initial_state lacks {missing}; {type(system).__name__} has states {list(states)}")
    tensors = {}
    for name, state in states.items():
        array = initial[name].detach().cpu().numpy() if isinstance(initial[name], Tensor) else np.asarray(initial[name])
        if array.dtype.kind not in "iuf":
            raise TypeError(f"initial_state[{name!r}] must hold real numbers, got {array.dtype}")
        value = torch.as_tensor(array.astype(float), dtype=dtype, device=device)
        if tuple(value.shape) == state.shape:
            value = value.unsqueeze(0)
        if tuple(value.shape[1:]) != state.shape:
            raise ValueError(f"initial_state[{name!r}] has shape {tuple(value.shape)}; expected {state.shape} or (series, *{state.shape})")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"initial_state[{name!r}] has NaN or infinite values")
        tensors[name] = value
    counts = {v.shape[0] for v in tensors.values()}
    if len(counts) > 1:
        raise ValueError(f"initial_state has different numbers of series per state: {counts}")
    return tensors, series


def as_mapping(states, name: str = "initial_state") -> dict:
    """{state name: values} from a Dataset of states, a mapping, or None (empty)."""
    if states is None:
        return {}
    if isinstance(states, xr.Dataset):
        return {key: states[key].values for key in states.data_vars}
    if not isinstance(states, Mapping):
        raise TypeError(f"{name} must be a mapping of state names to values, or a Dataset, got {type(states).__name__}")
    return dict(states)


def start_indices(system, ds, start: str) -> np.ndarray:
    """Per series, the time index to start from: 0 ("first"), or the last time at which every
    observed state is fully observed ("last")."""
    count = ds.sizes["series"]
    if start == "first":
        return np.zeros(count, dtype=int)
    if start != "last":
        raise ValueError(f"start must be 'first' or 'last', got {start!r}")
    complete = np.ones((count, ds.sizes["time"]), dtype=bool)
    for name in type(system).observed_states:
        values = np.asarray(ds[name].values, dtype=float)
        complete &= np.isfinite(values).reshape(count, ds.sizes["time"], -1).all(axis=2)
    if not complete.any(axis=1).all():
        raise ValueError("with start='last' every series needs a time at which all its observed states are observed")
    return ds.sizes["time"] - 1 - np.argmax(complete[:, ::-1], axis=1)


def state_at(system, ds, index: np.ndarray, initial=None) -> dict[str, np.ndarray]:
    """The state of each series at its time index: `initial` where it gives a state (taken as the
    state at that time), else the observed values there."""
    initial = as_mapping(initial)
    unknown = sorted(set(initial) - set(type(system).states()))
    if unknown:
        raise ValueError(f"initial_state names {unknown}, which are not States of {type(system).__name__}")
    series = np.arange(ds.sizes["series"])
    state = {}
    for name in type(system).states():
        if name in initial:
            state[name] = np.asarray(initial[name], dtype=float)
        elif name in ds.data_vars:
            value = np.asarray(ds[name].values, dtype=float)[series, index]
            if not np.isfinite(value).all():
                raise ValueError(f"{name!r} is not observed at the start of every series; pass it in initial_state")
            state[name] = value
        else:
            raise ValueError(f"state {name!r} is not observed; pass its value at the start in initial_state "
                             "(for example the initial_state of a FitResult, with start='first')")
    return state


def save(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a Dataset to a netCDF4/HDF5 file through h5py, atomically: the file is built in memory and
    replaces `path` only once written in full; a failed write raises OSError naming `path` and leaves
    the old file as it was."""
    check_dataset(ds, "ds", dims=())
    path = check_target("path", path)
    buffer = io.BytesIO()
    ds.to_netcdf(buffer, engine="h5netcdf")
    write_atomic(path, buffer.getbuffer())


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a Dataset written by `save` (or any self-contained netCDF4/HDF5 file) into memory.
    FileNotFoundError if there is none; ValueError naming `path` for a file that is not netCDF4/HDF5,
    is damaged, or reaches outside itself (external links, external storage, virtual datasets)."""
    with open_hdf5(path, NETCDF) as file, xr.open_dataset(file, engine="h5netcdf", phony_dims="access") as ds:
        phony = sorted(str(dim) for dim in ds.dims if str(dim).startswith("phony_dim_"))
        if phony:
            raise ValueError(f"it is HDF5 but not netCDF4: some of its datasets have axes without dimension scales "
                             f"(read as {phony})")
        return ds.load()
