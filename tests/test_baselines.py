"""The trivial predictors for irregular series, and the comparison table, against values written out by hand."""

import pytest
import torch

from physode.series import IrregularBatch, Task, compare_with_baselines, feature_mean, hold_last

F64 = torch.float64


def batch(times, values, mask):
    values = torch.tensor(values, dtype=F64)
    return IrregularBatch(torch.tensor(times, dtype=F64), values * torch.tensor(mask, dtype=F64),
                          torch.tensor(mask, dtype=F64))


def test_feature_mean_averages_the_observed_entries_only():
    train = batch([0.0, 1.0, 2.0], [[[1.0, 10.0], [3.0, 20.0], [5.0, 99.0]]], [[[1, 1], [1, 1], [0, 0]]])
    assert feature_mean(train).tolist() == [2.0, 15.0]


def test_hold_last_carries_each_feature_forward():
    """Feature 0 observed at t = 1 and 3, feature 1 only at t = 3; series 1 never sees feature 1."""
    observed = batch([1.0, 3.0], [[[4.0, 0.0], [6.0, 8.0]], [[2.0, 0.0], [0.0, 0.0]]], [[[1, 0], [1, 1]], [[1, 0], [0, 0]]])
    got = hold_last(observed, torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=F64))
    expected = torch.tensor([[[4, 8], [4, 8], [4, 8], [6, 8], [6, 8]],
                             [[2, 0], [2, 0], [2, 0], [2, 0], [2, 0]]], dtype=F64)
    assert torch.equal(got, expected)


def test_compare_with_baselines_on_all_and_unobserved_points():
    full = batch([0.0, 1.0, 2.0, 3.0], [[[1.0], [2.0], [4.0], [8.0]]], [[[1], [1], [1], [1]]])
    seen = batch([0.0, 2.0], [[[1.0], [4.0]]], [[[1], [1]]])
    train = batch([0.0], [[[3.0]]], [[[1]]])
    prediction = torch.tensor([[[1.0], [3.0], [4.0], [6.0]]], dtype=F64)
    got = compare_with_baselines(prediction, Task(seen, full), train)
    # model errors 0, 1, 0, 2; feature mean (3) errors 2, 1, 1, 5; hold last (1, 1, 4, 4) errors 0, 1, 0, 4
    assert got["all"] == pytest.approx({"model": 5 / 4, "feature mean": 31 / 4, "hold last": 17 / 4}, rel=1e-15)
    assert got["unobserved"] == pytest.approx({"model": 5 / 2, "feature mean": 26 / 2, "hold last": 17 / 2}, rel=1e-15)
