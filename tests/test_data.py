"""Dataset validation and netCDF/HDF5 files."""

import numpy as np
import pytest
import xarray as xr

import physode
from physode.datasets import lotka_volterra, three_body
from physode.systems import LotkaVolterraHybrid, ThreeBody


def _observations():
    return three_body(t=np.linspace(0, 1, 11), series=2).drop_vars("velocity")


def test_valid_dataset_passes():
    physode.data.validate(_observations(), ThreeBody())


@pytest.mark.parametrize("change, error, message", [
    (lambda ds: ds.drop_vars("position"), ValueError, r"lacks the observed state\(s\) \['position'\]"),
    (lambda ds: ds.rename({"series": "run"}), ValueError, "has no 'series' dimension"),
    (lambda ds: ds.transpose("time", "series", "body", "axis"), ValueError, "has dims \\('time', 'series', 'body', 'axis'\\)"),
    (lambda ds: ds.isel(body=slice(0, 2)), ValueError, "has state shape \\(2, 3\\)"),
    (lambda ds: ds.assign_coords(time=ds["time"].values[::-1]), ValueError, "strictly increasing"),
    (lambda ds: ds.where(ds["series"] != 1), ValueError, r"series \[1\] have no observation at all"),
    (lambda ds: ds["position"], TypeError, "must be an xarray.Dataset"),
])
def test_invalid_datasets(change, error, message):
    with pytest.raises(error, match=message):
        physode.data.validate(change(_observations()), ThreeBody())


def test_partial_observations_are_masks():
    ds = _observations()
    values = ds["position"].values.copy()
    values[0, 3:7] = np.nan
    values[1, :, 2, 0] = np.nan
    ds["position"] = (ds["position"].dims, values)
    physode.data.validate(ds, ThreeBody())


@pytest.mark.parametrize("suffix", [".nc", ".h5"])
def test_file_round_trip(tmp_path, suffix):
    ds = lotka_volterra(t=np.linspace(0, 2, 9), prey=(1.0, 2.0), predator=(1.0, 0.5))
    ds["prey"].values[0, 3] = np.nan
    ds["prey"].attrs["units"] = "animals"
    path = tmp_path / f"observations{suffix}"
    physode.data.save(ds, path)
    back = physode.data.load(path)
    xr.testing.assert_identical(back, ds)
    physode.data.validate(back, LotkaVolterraHybrid())
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"  # an HDF5 file, nothing pickled
