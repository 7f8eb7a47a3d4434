"""Irregular series: union batches with masks, subsampling, tasks, per-series losses, time grids."""

import math

import numpy as np
import pytest
import torch
import xarray as xr

from physode.series.irregular import IrregularBatch, extrapolation_task, interpolation_task, subsample, subsample_dataset
from physode.series.losses import gaussian_log_likelihood, masked_mean, mse
from physode.series.timegrid import integrate_series

F64 = torch.float64
NAN = math.nan


def two_series() -> IrregularBatch:
    return IrregularBatch.from_series(
        [[0.0, 1.0, 2.0], [0.5, 2.0, 3.0, 4.0]],
        [[[1.0, 10.0], [2.0, NAN], [3.0, 30.0]], [[4.0, 40.0], [5.0, NAN], [NAN, NAN], [7.0, 70.0]]], dtype=F64)


def test_union_batch_equals_the_hand_made_one():
    batch = two_series()
    # t = 3 is observed by nobody (all NaN) and is dropped
    assert batch.times.tolist() == [0.0, 0.5, 1.0, 2.0, 4.0]
    mask = torch.tensor([[[1, 1], [0, 0], [1, 0], [1, 1], [0, 0]],
                         [[0, 0], [1, 1], [0, 0], [1, 0], [1, 1]]], dtype=F64)
    values = torch.tensor([[[1, 10], [0, 0], [2, 0], [3, 30], [0, 0]],
                           [[0, 0], [4, 40], [0, 0], [5, 0], [7, 70]]], dtype=F64)
    assert torch.equal(batch.mask, mask) and torch.equal(batch.values, values)
    assert batch.observed.tolist() == [[True, False, True, True, False], [False, True, False, True, True]]


def test_the_batch_of_a_dataset_flattens_variables_and_drops_unobserved_times():
    ds = xr.Dataset({"a": (("series", "time"), [[1.0, NAN, 3.0], [NAN, NAN, 6.0]]),
                     "b": (("series", "time", "k"), np.arange(12.0).reshape(2, 3, 2))},
                    coords={"time": [0.0, 1.0, 2.0]})
    ds["b"][:, 1] = NAN
    batch = IrregularBatch.from_dataset(ds, dtype=F64)
    assert batch.times.tolist() == [0.0, 2.0] and batch.features == 3
    assert batch.values[1, 1].tolist() == [6.0, 10.0, 11.0]
    assert batch.mask[1, 0].tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="'c'"):
        IrregularBatch.from_dataset(ds, ["c"])


def test_bad_batches_are_refused():
    with pytest.raises(ValueError, match="same number of features"):
        IrregularBatch.from_series([[0.0], [0.0]], [[[1.0]], [[1.0, 2.0]]])
    with pytest.raises(ValueError, match=r"times\[0\] must be finite and strictly increasing"):
        IrregularBatch.from_series([[1.0, 0.0]], [[[1.0], [2.0]]])
    with pytest.raises(ValueError, match="fraction"):
        subsample(two_series(), 0.0)


def test_masked_mean_weighs_series_and_features_equally():
    # series 0 observes feature 0 at 3 times, feature 1 once; series 1 observes one entry
    values = torch.tensor([[[1.0, 8.0], [2.0, 0.0], [6.0, 0.0]], [[0.0, 0.0], [5.0, 0.0], [0.0, 0.0]]], dtype=F64)
    mask = torch.tensor([[[1, 1], [1, 0], [1, 0]], [[0, 0], [1, 0], [0, 0]]], dtype=F64)
    per_series = masked_mean(values, mask)
    assert per_series.tolist() == [(3.0 + 8.0) / 2, 5.0]
    target = IrregularBatch(torch.arange(3.0, dtype=F64), values, mask)
    squared = ((1 + 4 + 36) / 3 + 64) / 2
    assert mse(torch.zeros_like(values), target).item() == pytest.approx((squared + 25) / 2, rel=1e-12)
    std = 0.5
    log_density = gaussian_log_likelihood(torch.zeros_like(values), target, std)
    expected = -0.5 * 25 / std**2 - math.log(std) - 0.5 * math.log(2 * math.pi)
    assert log_density[1].item() == pytest.approx(expected, rel=1e-12)


def test_subsample_keeps_the_requested_fraction_of_each_series():
    t = torch.linspace(0, 1, 40, dtype=F64)
    values = torch.randn(6, 40, 2, dtype=F64)
    mask = torch.ones_like(values)
    mask[3, 20:] = 0  # series 3 observes 20 points
    batch = IrregularBatch(t, values, mask)
    kept = subsample(batch, 0.3, generator=torch.Generator().manual_seed(1))
    counts = kept.observed.sum(dim=1).tolist()
    assert counts == [12, 12, 12, 6, 12, 12]
    assert bool((kept.mask <= torch.ones_like(kept.mask)).all())
    # kept values are the original ones at the kept times
    original = batch.values[:, torch.searchsorted(t, kept.times)]
    assert torch.equal(kept.values, original * kept.mask)
    again = subsample(batch, 0.3, generator=torch.Generator().manual_seed(1))
    other = subsample(batch, 0.3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(again.mask, kept.mask) and not torch.equal(other.mask, kept.mask)


def test_subsample_dataset_is_fixed_by_its_seed():
    ds = xr.Dataset({"x": (("series", "time", "f"), np.random.default_rng(0).normal(size=(4, 30, 2)))},
                    coords={"time": np.linspace(0, 1, 30)})
    a, b = subsample_dataset(ds, 0.5, seed=3), subsample_dataset(ds, 0.5, seed=3)
    assert a.equals(b)
    kept = np.isfinite(a["x"].values).all(axis=2)
    assert kept.sum(axis=1).tolist() == [15] * 4
    np.testing.assert_array_equal(a["x"].values[kept], ds["x"].values[kept])


def test_interpolation_and_extrapolation_tasks():
    t = torch.linspace(0, 1, 10, dtype=F64)
    batch = IrregularBatch(t, torch.randn(3, 10, 1, dtype=F64), torch.ones(3, 10, 1, dtype=F64))
    task = interpolation_task(batch, 0.5, generator=torch.Generator().manual_seed(0))
    assert task.target is batch and task.observed.observed.sum(dim=1).tolist() == [5, 5, 5]
    task = extrapolation_task(batch, 0.4, generator=torch.Generator().manual_seed(0))
    assert task.target.times.tolist() == t[5:].tolist()
    assert bool((task.observed.times < t[5]).all()) and task.observed.observed.sum(dim=1).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="split"):
        extrapolation_task(batch, split=2.0)


def entries(batch: IrregularBatch) -> dict:
    """{(series, time, feature): value} of the observed entries."""
    mask = batch.mask.numpy().astype(bool)
    return {(i, float(batch.times[j]), k): float(batch.values[i, j, k]) for i, j, k in zip(*np.nonzero(mask))}


@pytest.mark.parametrize("fraction", [0.3, 0.5, 1.0])
def test_the_unobserved_points_of_an_interpolation_task(fraction):
    batch = IrregularBatch.from_series([np.linspace(0, 1, 7), np.linspace(0.05, 1.5, 9)],
                                       [np.random.randn(7, 2), np.random.randn(9, 2)], dtype=F64)
    batch = batch.with_mask(torch.rand(batch.mask.shape, dtype=F64) < 0.8)
    task = interpolation_task(batch, fraction, generator=torch.Generator().manual_seed(1))
    target, observed, unobserved = entries(task.target), entries(task.observed), entries(task.unobserved)
    assert observed and set(observed) <= set(target)
    assert unobserved == {key: value for key, value in target.items() if key not in observed}
    assert (len(unobserved) == 0) == (fraction == 1.0)


def test_every_target_of_an_extrapolation_task_is_unobserved():
    t = torch.linspace(0, 1, 10, dtype=F64)
    batch = IrregularBatch(t, torch.randn(3, 10, 2, dtype=F64), torch.ones(3, 10, 2, dtype=F64))
    task = extrapolation_task(batch, 0.5, generator=torch.Generator().manual_seed(0))
    assert entries(task.unobserved) == entries(task.target)


@pytest.mark.parametrize("grid", ["union", "rescaled", "auto"])
def test_series_solves_match_the_closed_form(grid):
    a = torch.tensor([[0.0, 1.0], [-1.0, -0.1]], dtype=F64)
    times = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0, 7.0], dtype=F64)
    observed = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 0, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1]], dtype=torch.bool)
    start = torch.tensor([0.0, 0.0, 0.0], dtype=F64) if grid == "union" else torch.tensor([0.0, 0.25, 0.5], dtype=F64)
    observed &= times[None, :] >= start[:, None]
    y0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=F64)
    ys = integrate_series(lambda t, y: y @ a.T, y0, times, observed, start=start, grid=grid, rtol=1e-11, atol=1e-12)
    exact = torch.stack([torch.stack([torch.linalg.matrix_exp(a * (t - s)) @ y for t in times])
                         for y, s in zip(y0, start)])
    assert ((ys - exact).abs() * observed[..., None]).max().item() < 1e-9
    assert bool((ys[~observed] == 0).all())  # entries a series does not need are zero, whatever the grid


def test_a_union_grid_needs_a_common_start():
    times = torch.tensor([1.0, 2.0], dtype=F64)
    observed = torch.ones(2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="grid='rescaled'"):
        integrate_series(lambda t, y: -y, torch.ones(2, 1, dtype=F64), times, observed,
                         start=torch.tensor([0.0, 0.5], dtype=F64), grid="union")
    with pytest.raises(ValueError, match="grid must be one of"):
        integrate_series(lambda t, y: -y, torch.ones(2, 1, dtype=F64), times, observed, grid="own")
