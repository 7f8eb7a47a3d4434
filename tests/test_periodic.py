"""The synthetic periodic set of Latent ODEs: a shared irregular grid, closed-form signal, noise."""

import numpy as np
import pytest
import xarray as xr
from physode.datasets import periodic


def test_shapes_and_shared_sorted_grid():
    ds = periodic(20, 50)
    assert dict(ds.sizes) == {"series": 20, "time": 50, "feature": 1}
    assert ds["x"].dims == ("series", "time", "feature") and ds["feature"].values.tolist() == ["x"]
    assert ds["frequency"].dims == ("series",) and ds["offset"].dims == ("series",)
    t = ds["time"].values
    assert t[0] == 0.0 and np.all(np.diff(t) > 0) and t[-1] <= 5.0 and t[-1] > 4.0
    assert np.isfinite(ds["x"].values).all()
    f = ds["frequency"].values
    assert f.min() >= 0.4 and f.max() <= 0.8
    long = periodic(2, 2000, t_end=3.0)["time"].values
    assert long[-1] <= 3.0 and abs(np.mean(long) - 1.5) < 0.1  # uniform on [0, t_end]


def test_seeded_determinism():
    xr.testing.assert_identical(periodic(20, 30, seed=4), periodic(20, 30, seed=4))
    assert not np.array_equal(periodic(20, 30, seed=4)["x"].values, periodic(20, 30, seed=5)["x"].values)


def test_noise_free_signal_is_the_closed_form():
    ds = periodic(20, 100, noise=0.0, seed=1)
    t = ds["time"].values
    f, offset = ds["frequency"].values, ds["offset"].values
    expected = np.sin(2 * np.pi * f[:, None] * t[None, :]) + offset[:, None]
    np.testing.assert_allclose(ds["x"].values[:, :, 0], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["x"].values[:, 0, 0], offset, rtol=0, atol=0)  # phase 0 at t = 0


def test_normal_noise_has_the_requested_standard_deviation():
    clean = periodic(200, 100, noise=0.0, noise_distribution="normal", seed=3)
    noisy = periodic(200, 100, noise=0.05, noise_distribution="normal", seed=3)
    xr.testing.assert_identical(clean["frequency"], noisy["frequency"])  # same grid and signal, noise drawn last
    residual = (noisy["x"] - clean["x"]).values
    assert abs(residual.std() / 0.05 - 1) < 0.05 and abs(residual.mean()) < 0.005
    assert noisy.attrs["noise_distribution"] == "normal" and "Gaussian" in noisy.attrs["source"]
    offsets = periodic(2000, 2, seed=2)["offset"].values
    assert abs(offsets.mean() - 1) < 0.01 and abs(offsets.std() / 0.1 - 1) < 0.1


def test_default_noise_is_the_references_uniform_on_all_but_the_first_point():
    noise = 0.05
    clean = periodic(200, 100, noise=0.0, seed=3)
    noisy = periodic(200, 100, noise=noise, seed=3)
    assert noisy.attrs["noise_distribution"] == "uniform" and "U(0, 1)" in noisy.attrs["source"]
    residual = (noisy["x"] - clean["x"]).values[:, :, 0]
    np.testing.assert_array_equal(noisy["x"].values[:, 0, 0], noisy["offset"].values)  # t = 0: no noise, phase 0
    assert np.all(residual[:, 0] == 0.0)
    later = residual[:, 1:].ravel()  # 19,800 draws of noise * U(0, 1)
    assert later.min() >= 0.0 and later.max() < noise  # a Gaussian would go negative
    assert abs(later.mean() / (noise / 2) - 1) < 0.02  # a zero-mean Gaussian would fail
    assert abs(later.std() / (noise / np.sqrt(12)) - 1) < 0.03  # a Gaussian of std noise would fail
    quarters = np.histogram(later, bins=4, range=(0.0, noise))[0] / later.size
    np.testing.assert_allclose(quarters, 0.25, atol=0.015)  # flat, not bell-shaped


def test_clean_signal_is_the_same_across_noise_distributions_and_levels():
    runs = [periodic(30, 40, noise=noise, noise_distribution=d, seed=7)
            for d in ("uniform", "normal") for noise in (0.0, 0.01, 0.3)]
    for ds in runs[1:]:
        xr.testing.assert_identical(ds["time"], runs[0]["time"])
        xr.testing.assert_identical(ds["frequency"], runs[0]["frequency"])
        xr.testing.assert_identical(ds["offset"], runs[0]["offset"])
    xr.testing.assert_identical(runs[0]["x"], runs[3]["x"])  # noise 0: both distributions give the clean signal
    assert not np.array_equal(runs[1]["x"].values, runs[4]["x"].values)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"series": 0}, ValueError, "series must be a positive integer, got 0"),
    ({"points": -1}, ValueError, "points must be a positive integer, got -1"),
    ({"points": 2.0}, TypeError, "points must be a positive integer, got float"),
    ({"t_end": 0.0}, ValueError, "t_end must be a positive finite number"),
    ({"t_end": float("inf")}, ValueError, "t_end must be a positive finite number"),
    ({"noise": -0.1}, ValueError, "noise must be a non-negative finite number"),
    ({"seed": -1}, ValueError, "seed must be a non-negative integer"),
    ({"noise_distribution": "gaussian"}, ValueError,
     r"noise_distribution must be one of \('uniform', 'normal'\), got 'gaussian'"),
    ({"noise_distribution": None}, TypeError, r"noise_distribution must be one of \('uniform', 'normal'\), got NoneType"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        periodic(**kwargs)
