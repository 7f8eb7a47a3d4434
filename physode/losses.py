"""Losses between predicted and observed states, over the observed entries only (NaN = unobserved)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

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
    return total / count.clamp_min(torch.finfo(count.dtype).tiny)


def check_penalty(loss) -> str | Callable:
    if isinstance(loss, str) and loss not in PENALTIES:
        raise ValueError(f"loss must be one of {sorted(PENALTIES)} or a callable of the residual, got {loss!r}")
    if not isinstance(loss, str) and not callable(loss):
        raise TypeError(f"loss must be one of {sorted(PENALTIES)} or a callable of the residual, got {type(loss).__name__}")
    return loss
