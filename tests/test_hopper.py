"""The MuJoCo hopper set of Latent ODEs: generation, cache, split and min-max scaling."""

import importlib
import os

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("mujoco")

from physode.datasets import MinMaxScale, data_directory, hopper, hopper_path, split

JOINTS = ["rootx", "rootz", "rooty", "waist", "hip", "knee", "ankle"]


@pytest.fixture(scope="module")
def small():
    return hopper(20, cache=False, progress=False)


def test_shapes_dims_coords_and_attrs(small):
    assert dict(small.sizes) == {"series": 20, "time": 200, "joint": 7}
    for name in ("qpos", "qvel"):
        assert small[name].dims == ("series", "time", "joint")
        assert small[name].dtype == np.float64
        assert np.isfinite(small[name].values).all()
    assert small["joint"].values.tolist() == JOINTS
    np.testing.assert_array_equal(small["series"].values, np.arange(20))
    np.testing.assert_allclose(small["time"].values, 0.005 * np.arange(200), rtol=0, atol=1e-15)
    assert small["time"].attrs["units"] == "s"
    assert small.attrs["seed"] == 123 and small.attrs["timestep"] == 0.005
    import mujoco

    assert small.attrs["mujoco_version"] == mujoco.__version__


def test_initial_states_are_drawn_from_the_papers_ranges(small):
    first = small.isel(time=0)
    root = first["qpos"].sel(joint=["rootx", "rootz"]).values
    angles = first["qpos"].sel(joint=JOINTS[2:]).values
    velocities = first["qvel"].values
    assert root.min() >= 0 and root.max() <= 0.5
    assert angles.min() >= -2 and angles.max() <= 2 and angles.max() - angles.min() > 2  # spread, not a constant
    assert velocities.min() >= -5 and velocities.max() <= 5 and velocities.max() - velocities.min() > 5


def test_first_state_is_the_seeded_draw(small):
    # The draws of Latent ODEs' HopperPhysics, in their order, from default_rng(seed): the state is recorded
    # before the first step, so time 0 holds the drawn initial state itself.
    rng = np.random.default_rng(123)
    for k in range(3):
        root, angles, velocity = rng.uniform(0, 0.5, 2), rng.uniform(-2, 2, 5), rng.uniform(-5, 5, 7)
        np.testing.assert_array_equal(small["qpos"].values[k, 0], np.concatenate([root, angles]))
        np.testing.assert_array_equal(small["qvel"].values[k, 0], velocity)


def test_semi_implicit_euler_pins_timestep_and_order(small):
    # MuJoCo's Euler step: qvel_{n+1} = qvel_n + h qacc_n, then qpos_{n+1} = qpos_n + h qvel_{n+1} (slide and
    # hinge joints), so the recorded positions advance by 0.005 s times the next recorded velocity.
    qpos, qvel = small["qpos"].values, small["qvel"].values
    np.testing.assert_allclose(np.diff(qpos, axis=1), 0.005 * qvel[:, 1:], rtol=0, atol=1e-10)
    assert np.abs(np.diff(qvel, axis=1)).max() > 1e-3  # the dynamics is not trivial


def test_seeded_determinism(small):
    again = hopper(20, cache=False, progress=False)
    xr.testing.assert_identical(again, small)
    other = hopper(20, seed=7, cache=False, progress=False)
    assert not np.array_equal(other["qpos"].values, small["qpos"].values)
    fewer = hopper(3, steps=10, cache=False, progress=False)
    np.testing.assert_array_equal(fewer["qpos"].values, small["qpos"].values[:3, :10])


def test_cache_file_is_written_once_and_reused(tmp_path, small, monkeypatch):
    ds = hopper(20, directory=tmp_path, progress=False)
    path = tmp_path / "hopper-n20-s123-t200.nc"
    assert path.exists() and path == hopper_path(20, directory=tmp_path)
    assert not list(tmp_path.glob("*.partial"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    xr.testing.assert_identical(ds, small)
    mtime = os.stat(path).st_mtime_ns
    module = importlib.import_module("physode.datasets.hopper")
    monkeypatch.setattr(module, "_generate", lambda *args: pytest.fail("generated again instead of loading the cache"))
    back = hopper(20, directory=tmp_path, progress=False)
    xr.testing.assert_identical(back, small)
    assert os.stat(path).st_mtime_ns == mtime


def test_data_directory_order(tmp_path, monkeypatch):
    monkeypatch.delenv("PHYSODE_DATA", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_directory() == tmp_path / "home" / ".local" / "share" / "physode"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_directory() == tmp_path / "xdg" / "physode"
    monkeypatch.setenv("PHYSODE_DATA", str(tmp_path / "env"))
    assert data_directory() == tmp_path / "env"
    assert data_directory(tmp_path / "given") == tmp_path / "given"
    assert hopper_path(5, seed=2, steps=9) == tmp_path / "env" / "hopper-n5-s2-t9.nc"


def test_split_by_position(small):
    train, test = split(small)
    assert train.sizes["series"] == 16 and test.sizes["series"] == 4
    np.testing.assert_array_equal(train["series"].values, np.arange(16))
    np.testing.assert_array_equal(test["series"].values, np.arange(16, 20))
    xr.testing.assert_identical(xr.concat([train, test], dim="series"), small)
    train, test = split(small.isel(series=slice(0, 7)), train=0.5)  # int(7 * 0.5) = 3, as in Latent ODEs
    assert train["series"].values.tolist() == [0, 1, 2] and test["series"].values.tolist() == [3, 4, 5, 6]


def test_min_max_scale_matches_latent_ode_normalisation(small):
    scale = MinMaxScale.fit(small)
    scaled = scale.apply(small)
    for name in ("qpos", "qvel"):
        x = small[name].values
        low = x.reshape(-1, 7).min(axis=0)
        high = x.reshape(-1, 7).max(axis=0)
        np.testing.assert_allclose(scaled[name].values, (x - low) / high, rtol=1e-15, atol=0)
        np.testing.assert_array_equal(scale.minimum[name].values, low)
        assert scale.minimum[name].dims == ("joint",) and scaled[name].dims == ("series", "time", "joint")
        np.testing.assert_allclose(scaled[name].min(dim=("series", "time")).values, 0, atol=1e-15)
    back = scale.invert(scaled)
    for name in ("qpos", "qvel"):
        np.testing.assert_allclose(back[name].values, small[name].values, rtol=0, atol=1e-12)
    assert back["qpos"].attrs == small["qpos"].attrs


def test_min_max_scale_zero_maximum_nan_and_pass_through():
    values = np.array([[[0.0, -2.0, 1.0], [0.0, -4.0, np.nan]], [[0.0, -3.0, 3.0], [0.0, -1.0, 2.0]]])
    ds = xr.Dataset({"x": (("series", "time", "feature"), values), "rate": ("series", [1.0, 2.0])})
    scale = MinMaxScale.fit(ds)
    assert list(scale.minimum) == ["x"]  # per-series variables are not scaled
    np.testing.assert_array_equal(scale.maximum["x"].values, [1.0, -1.0, 3.0])  # max 0 replaced by 1
    np.testing.assert_array_equal(scale.minimum["x"].values, [0.0, -4.0, 1.0])  # NaN-aware
    scaled = scale.apply(ds)
    expected = (values - np.array([0.0, -4.0, 1.0])) / np.array([1.0, -1.0, 3.0])
    np.testing.assert_array_equal(scaled["x"].values, expected)
    assert np.isnan(scaled["x"].values[0, 1, 2])
    np.testing.assert_array_equal(scaled["rate"].values, [1.0, 2.0])
    xr.testing.assert_allclose(scale.invert(scaled), ds, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="feature coordinates"):
        scale.apply(ds.assign_coords(feature=["a", "b", "c"]).isel(feature=[0, 1]))
    with pytest.raises(ValueError, match=r"lacks the scaled variable\(s\) \['x'\]"):
        scale.apply(ds.drop_vars("x"))


@pytest.mark.parametrize("call, error, message", [
    (lambda: hopper(0, cache=False), ValueError, "series must be a positive integer, got 0"),
    (lambda: hopper(-3, cache=False), ValueError, "series must be a positive integer"),
    (lambda: hopper(2.5, cache=False), TypeError, "series must be a positive integer, got float"),
    (lambda: hopper(2, steps=0, cache=False), ValueError, "steps must be a positive integer, got 0"),
    (lambda: hopper(2, seed=-1, cache=False), ValueError, "seed must be a non-negative integer"),
    (lambda: hopper(2, cache="yes"), TypeError, "cache must be True or False"),
    (lambda: hopper(2, directory=3), TypeError, "directory must be a path"),
    (lambda: split(xr.Dataset({"x": ("series", [1.0, 2.0])}), train=1.0), ValueError, r"train must be a fraction in \(0, 1\)"),
    (lambda: split(xr.Dataset({"x": ("series", [1.0, 2.0])}), train=0), ValueError, r"train must be a fraction in \(0, 1\)"),
    (lambda: split(xr.Dataset({"x": ("series", [1.0, 2.0])}), train="0.5"), TypeError, "train must be a fraction"),
    (lambda: split(xr.Dataset({"x": ("series", [1.0, 2.0])}), train=0.2), ValueError, "leaves the train or the test part empty"),
    (lambda: split(xr.Dataset({"x": ("run", [1.0, 2.0])})), ValueError, "ds has no 'series' dimension"),
    (lambda: MinMaxScale.fit(np.zeros(3)), TypeError, "ds must be an xarray.Dataset"),
])
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
