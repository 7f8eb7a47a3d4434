"""Trivial predictors for irregular series, the yardsticks any model of them must beat."""

from __future__ import annotations

import torch
from torch import Tensor

from .irregular import IrregularBatch, Task
from .losses import mse


def feature_mean(train: IrregularBatch) -> Tensor:
    """The mean of each feature over every observed entry of `train` (features,)."""
    return (train.values * train.mask).sum(dim=(0, 1)) / train.mask.sum(dim=(0, 1)).clamp_min(1)


def hold_last(observed: IrregularBatch, times: Tensor) -> Tensor:
    """Each feature's last observation at or before each time (series, T, features): the
    observation carried forward; before a series' first observation of a feature, that first
    observation; where a feature is never observed, zero."""
    times = times.to(observed.times.dtype)
    # position of each observed time among the target times: observations at or before t count
    after = torch.searchsorted(times, observed.times, right=False)
    t_count, series, features = len(times), observed.series, observed.features
    index = torch.arange(len(observed.times), device=times.device)
    latest = torch.full((series, t_count + 1, features), -1, dtype=torch.long, device=times.device)
    stamp = torch.where(observed.mask > 0, index[None, :, None], torch.full_like(index[None, :, None], -1))
    latest.scatter_reduce_(1, after[None, :, None].expand(series, -1, features), stamp, reduce="amax")
    latest = latest[:, :t_count].cummax(dim=1).values
    first = torch.where(observed.mask > 0, index[None, :, None], torch.full_like(index[None, :, None], len(index)))
    first = first.amin(dim=1, keepdim=True)
    chosen = torch.where(latest >= 0, latest, first.expand_as(latest))
    never = chosen >= len(index)
    picked = observed.values.gather(1, chosen.clamp_max(len(index) - 1))
    return torch.where(never, torch.zeros_like(picked), picked)


def compare_with_baselines(prediction: Tensor, task: Task, train: IrregularBatch) -> dict[str, dict[str, float]]:
    """Test MSE (`mse`) of a model's `prediction` (series, T, features) at task.target.times and of
    the two trivial predictors (`feature_mean` of `train`, `hold_last` of task.observed):
    {"all": on every target point, "unobserved": on Task.unobserved} -> {"model" | "feature mean" |
    "hold last": MSE}."""
    scores = {}
    for points, target in (("all", task.target), ("unobserved", task.unobserved)):
        model = prediction[:, torch.searchsorted(task.target.times, target.times)]
        scores[points] = {"model": mse(model, target).item(),
                          "feature mean": mse(feature_mean(train).expand_as(target.values), target).item(),
                          "hold last": mse(hold_last(task.observed, target.times), target).item()}
    return scores
