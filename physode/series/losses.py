"""Losses between predictions and observations, over the observed entries only: of a System's
states (NaN = unobserved), and of irregular batches (a mask), averaged per series and per
feature so that densely observed series do not dominate."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from .irregular import IrregularBatch

# elementwise penalties of the residual r = prediction - observation
PENALTIES: dict[str, Callable[[Tensor], Tensor]] = {
    "mse": lambda r: r.square(),
    "mae": lambda r: r.abs(),
    "huber": lambda r: torch.nn.functional.huber_loss(r, torch.zeros_like(r), reduction="none", delta=1.0),
}


def masked_loss(
    predicted: Mapping[str, Tensor], observed: Mapping[str, Tensor], penalty: str | Callable[[Tensor], Tensor] = "mse",
    time_weight: Tensor | None = None,
) -> Tensor:
    """Weighted mean of penalty(prediction - observation) over every observed entry.

    predicted and observed map state names to tensors (series, time, *shape); observed is NaN where
    not observed. time_weight (time,) weighs each time point, in the numerator and the count alike.
    """
    total, count = masked_sums(predicted, observed, penalty, time_weight)
    return total / count.clamp_min(torch.finfo(count.dtype).tiny)


def masked_sums(
    predicted: Mapping[str, Tensor], observed: Mapping[str, Tensor], penalty: str | Callable[[Tensor], Tensor] = "mse",
    time_weight: Tensor | None = None,
) -> Tensor:
    """[the weighted sum of the penalty, the sum of the weights] over the observed entries, of
    which masked_loss is the ratio: sums that add up over disjoint sets of series."""
    penalty = PENALTIES[penalty] if isinstance(penalty, str) else penalty
    total, count = None, None
    for name, target in observed.items():
        mask = torch.isfinite(target)
        residual = torch.where(mask, predicted[name] - target.nan_to_num(), torch.zeros((), dtype=target.dtype, device=target.device))
        weight = mask.to(target.dtype)
        if time_weight is not None:
            weight = weight * time_weight.reshape(1, -1, *([1] * (target.ndim - 2)))
        term, n = (penalty(residual) * weight).sum(), weight.sum()
        total, count = (term, n) if total is None else (total + term, count + n)
    return torch.stack([total, count])


def check_penalty(loss) -> str | Callable:
    if isinstance(loss, str) and loss not in PENALTIES:
        raise ValueError(f"loss must be one of {sorted(PENALTIES)} or a callable of the residual, got {loss!r}")
    if not isinstance(loss, str) and not callable(loss):
        raise TypeError(f"loss must be one of {sorted(PENALTIES)} or a callable of the residual, got {type(loss).__name__}")
    return loss


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Per series: the mean over features of each feature's mean over its observed time points.

    values (..., series, T, features), mask (series, T, features). Features a series never
    observes do not count; the result has shape (..., series).
    """
    count = mask.sum(dim=-2)
    per_feature = (values * mask).sum(dim=-2) / count.clamp_min(1)
    seen = (count > 0).to(values.dtype)
    return (per_feature * seen).sum(dim=-1) / seen.sum(dim=-1).clamp_min(1)


def mse(prediction: Tensor, target: IrregularBatch) -> Tensor:
    """Mean squared error over the observed entries of `target`, averaged per series and feature."""
    return masked_mean((prediction - target.values).square(), target.mask).mean()


def gaussian_log_likelihood(prediction: Tensor, target: IrregularBatch, std: float) -> Tensor:
    """log N(target | prediction, std^2) per observed entry, averaged per series and feature:
    shape (..., series)."""
    z = (target.values - prediction) / std
    log_density = -0.5 * z.square() - np.log(std) - 0.5 * np.log(2 * np.pi)
    return masked_mean(log_density, target.mask)
