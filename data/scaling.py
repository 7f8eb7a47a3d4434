"""Train/test split by series and the min-max scaling of Latent ODEs (Rubanova, Chen & Duvenaud, NeurIPS 2019)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from physode.checks import check_dataset, check_fraction

REDUCED = ("series", "time")


def split(ds: xr.Dataset, train: float = 0.8) -> tuple[xr.Dataset, xr.Dataset]:
    """(first int(n * train) series, the rest), by position, as Latent ODEs' utils.split_train_test."""
    check_dataset(ds, "ds", dims=("series",))
    check_fraction("train", train)
    count = ds.sizes["series"]
    cut = int(count * train)
    if cut == 0 or cut == count:
        raise ValueError(f"train={train} of {count} series leaves the train or the test part empty ({cut} train series)")
    return ds.isel(series=slice(0, cut)), ds.isel(series=slice(cut, None))


@dataclass(frozen=True)
class MinMaxScale:
    """x -> (x - minimum) / maximum per feature, Latent ODEs' utils.normalize_data (Rubanova et al. 2019).

    For each scaled variable, `minimum` and `maximum` are DataArrays over the variable's feature
    dims (all but `series` and `time`): NaN-aware min and max over series and time, with a maximum
    of 0 replaced by 1 as in their code. NaN (unobserved) stays NaN.
    """

    minimum: Mapping[str, xr.DataArray]
    maximum: Mapping[str, xr.DataArray]

    @classmethod
    def fit(cls, ds: xr.Dataset, variables=None) -> MinMaxScale:
        """Min and max of each variable over series and time; `variables` defaults to every data
        variable with both dims (others, such as per-series parameters, pass through unscaled)."""
        check_dataset(ds, "ds", dims=("series",))
        if variables is None:
            variables = [name for name, var in ds.data_vars.items() if all(dim in var.dims for dim in REDUCED)]
        elif isinstance(variables, str):
            variables = [variables]
        minimum, maximum = {}, {}
        for name in variables:
            if name not in ds.data_vars:
                raise ValueError(f"variables names {name!r}, which is not a data variable (variables: {list(ds.data_vars)})")
            var = ds[name]
            if not all(dim in var.dims for dim in REDUCED) or not np.issubdtype(var.dtype, np.number):
                raise ValueError(f"variable {name!r} must be numeric with dims 'series' and 'time' to be scaled "
                                 f"(dims {var.dims}, dtype {var.dtype})")
            minimum[name] = var.min(dim=REDUCED, skipna=True)
            largest = var.max(dim=REDUCED, skipna=True)
            maximum[name] = largest.where(largest != 0, 1.0)
        return cls(minimum, maximum)

    def apply(self, ds: xr.Dataset) -> xr.Dataset:
        """A new Dataset with each fitted variable scaled to (x - minimum) / maximum."""
        return self._map(ds, lambda x, low, high: (x - low) / high)

    def invert(self, ds: xr.Dataset) -> xr.Dataset:
        """A new Dataset with each fitted variable scaled back, x * maximum + minimum."""
        return self._map(ds, lambda x, low, high: x * high + low)

    def _map(self, ds: xr.Dataset, function) -> xr.Dataset:
        check_dataset(ds, "ds", dims=("series",))
        missing = [name for name in self.minimum if name not in ds.data_vars]
        if missing:
            raise ValueError(f"ds lacks the scaled variable(s) {missing} (variables: {list(ds.data_vars)})")
        out = ds.copy()
        with xr.set_options(arithmetic_join="exact", keep_attrs=True):
            for name in self.minimum:
                try:
                    out[name] = function(ds[name], self.minimum[name], self.maximum[name]).transpose(*ds[name].dims)
                except ValueError as error:
                    message = f"variable {name!r} does not match the fitted scale's feature coordinates: {error}"
                    raise ValueError(message) from error
        return out
