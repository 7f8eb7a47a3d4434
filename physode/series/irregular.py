"""Irregularly sampled series (Rubanova, Chen & Duvenaud, "Latent ODEs for irregularly-sampled
time series", NeurIPS 2019): a batch is the union of its series' observation times with an
observation mask; subsampling; the interpolation and extrapolation tasks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from ..checks import check_dataset, check_fraction
from .dataset import check_nonempty, observed_values, time_coordinate


@dataclass(frozen=True)
class IrregularBatch:
    """Series on the union of their observation times.

    `times` (T,) strictly increasing; `values` (series, T, features), zero where not observed;
    `mask` (series, T, features), 1 where observed and 0 elsewhere, in the values' dtype. Every
    time point is observed by at least one series (see `compact`).
    """

    times: Tensor
    values: Tensor
    mask: Tensor

    def __post_init__(self):
        if self.times.ndim != 1:
            raise ValueError(f"times must be 1-D, got shape {tuple(self.times.shape)}")
        if self.values.ndim != 3 or self.values.shape[1] != len(self.times):
            raise ValueError(f"values must be (series, {len(self.times)} times, features), got {tuple(self.values.shape)}")
        if self.mask.shape != self.values.shape:
            raise ValueError(f"mask has shape {tuple(self.mask.shape)}; values have {tuple(self.values.shape)}")
        if len(self.times) > 1 and not bool((self.times[1:] > self.times[:-1]).all()):
            raise ValueError("times must be strictly increasing")

    @property
    def series(self) -> int:
        return self.values.shape[0]

    @property
    def features(self) -> int:
        return self.values.shape[2]

    @property
    def observed(self) -> Tensor:
        """(series, T) bool: the series observes at least one feature at that time."""
        return self.mask.amax(dim=2) > 0

    @classmethod
    def from_series(cls, times: Sequence, values: Sequence, masks: Sequence | None = None, *,
                    dtype: torch.dtype | None = None, device=None) -> IrregularBatch:
        """The union batch of series i observed at times[i] (n_i,) with values[i] (n_i, features);
        masks[i] (n_i, features) marks which are observed (default: the finite values)."""
        if len(times) != len(values) or (masks is not None and len(masks) != len(values)):
            raise ValueError(f"times, values and masks must list the same series; got {len(times)}, {len(values)}"
                             + ("" if masks is None else f", {len(masks)}"))
        dtype = dtype or torch.get_default_dtype()
        ts = [np.asarray(t, dtype=float).reshape(-1) for t in times]
        xs = [np.asarray(x, dtype=float) for x in values]
        for i, (t, x) in enumerate(zip(ts, xs)):
            if x.ndim != 2 or x.shape[0] != len(t):
                raise ValueError(f"values[{i}] must be ({len(t)} times, features), got shape {x.shape}")
            if len(t) and (not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0)):
                raise ValueError(f"times[{i}] must be finite and strictly increasing")
        features = {x.shape[1] for x in xs}
        if len(features) != 1:
            raise ValueError(f"every series must have the same number of features, got {sorted(features)}")
        union = np.unique(np.concatenate(ts))
        full = np.full((len(xs), len(union), features.pop()), np.nan)
        for i, (t, x) in enumerate(zip(ts, xs)):
            observed = np.isfinite(x) if masks is None else np.asarray(masks[i], dtype=bool) & np.isfinite(x)
            full[i, np.searchsorted(union, t)] = np.where(observed, x, np.nan)
        return cls._from_array(union, full, dtype, device)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, variables: Sequence[str] | None = None, *, dtype: torch.dtype | None = None,
                     device=None) -> IrregularBatch:
        """The batch of an xarray.Dataset (series, time, ...) with NaN = not observed: the features
        are the variables' trailing dims flattened, in order (default: every data variable with
        dims series and time first)."""
        check_dataset(ds)
        check_nonempty(ds)
        names = list(variables) if variables is not None else series_variables(ds)
        if not names:
            raise ValueError("the dataset has no variable with dims ('series', 'time', ...)")
        arrays = []
        for name in names:
            if name not in series_variables(ds):
                raise ValueError(f"variable {name!r} must exist with dims ('series', 'time', ...)")
            array = observed_values(ds, name)
            arrays.append(array.reshape(array.shape[0], array.shape[1], -1))
        return cls._from_array(time_coordinate(ds), np.concatenate(arrays, axis=2),
                               dtype or torch.get_default_dtype(), device)

    @classmethod
    def _from_array(cls, times: np.ndarray, values: np.ndarray, dtype, device) -> IrregularBatch:
        observed = np.isfinite(values)
        batch = cls(torch.as_tensor(np.array(times), dtype=dtype, device=device),
                    torch.as_tensor(np.where(observed, values, 0.0), dtype=dtype, device=device),
                    torch.as_tensor(observed, dtype=dtype, device=device))
        return batch.compact()

    def compact(self) -> IrregularBatch:
        """Drop the time points no series observes."""
        keep = self.observed.any(dim=0)
        if bool(keep.all()):
            return self
        return IrregularBatch(self.times[keep], self.values[:, keep], self.mask[:, keep])

    def select(self, index) -> IrregularBatch:
        """The batch of the series `index` (positions), on the union of their own times."""
        return IrregularBatch(self.times, self.values[index], self.mask[index]).compact()

    def with_mask(self, mask: Tensor) -> IrregularBatch:
        """The same series observed only where `mask` (series, T, features) is set (within the old mask)."""
        mask = self.mask * mask.to(self.mask.dtype)
        return IrregularBatch(self.times, self.values * mask, mask).compact()

    def between(self, start: float, end: float) -> IrregularBatch:
        """The time points in [start, end)."""
        keep = (self.times >= start) & (self.times < end)
        return IrregularBatch(self.times[keep], self.values[:, keep], self.mask[:, keep]).compact()

    def to(self, *args, **kwargs) -> IrregularBatch:
        return IrregularBatch(self.times.to(*args, **kwargs), self.values.to(*args, **kwargs), self.mask.to(*args, **kwargs))


def subsample(batch: IrregularBatch, fraction: float, *, generator: torch.Generator | None = None) -> IrregularBatch:
    """Keep round(fraction * n) of the n time points each series observes (at least one), drawn
    uniformly without replacement; a new draw per call unless `generator` is seeded alike."""
    keep = _keep(batch.observed, fraction, generator)
    return batch.with_mask(keep[:, :, None].expand_as(batch.mask))


def subsample_dataset(ds: xr.Dataset, fraction: float, *, seed: int = 0) -> xr.Dataset:
    """The Dataset with only round(fraction * n) of each series' n observed time points kept (the
    others set to NaN in every variable with dims series and time), fixed by `seed`."""
    check_dataset(ds)
    observed = np.zeros((ds.sizes["series"], ds.sizes["time"]), dtype=bool)
    for name in series_variables(ds):
        values = np.isfinite(np.asarray(ds[name].values, dtype=float))
        observed |= values.reshape(*values.shape[:2], -1).any(axis=2)
    keep = _keep(torch.as_tensor(observed), fraction, torch.Generator().manual_seed(seed)).numpy()
    mask = xr.DataArray(keep, dims=("series", "time"))
    return ds.assign({name: ds[name].where(mask) for name in series_variables(ds)})


def _keep(observed: Tensor, fraction: float, generator: torch.Generator | None) -> Tensor:
    """(series, T) bool: round(fraction * n) (at least one) of each row's n observed points, at random."""
    check_fraction("fraction", fraction, closed=True)
    count = (observed.sum(dim=1).double() * fraction).round().clamp_min(1)
    scores = torch.rand(observed.shape, generator=generator, dtype=torch.float64).to(observed.device)
    scores = torch.where(observed, scores, torch.full_like(scores, 2.0))
    rank = scores.argsort(dim=1).argsort(dim=1)
    return (rank < count[:, None]) & observed


@dataclass(frozen=True)
class Task:
    """What a model sees (`observed`) and what it must predict (`target`), for the same series."""

    observed: IrregularBatch
    target: IrregularBatch

    @property
    def unobserved(self) -> IrregularBatch:
        """The target's entries that `observed` does not hold: what a model must infer rather than
        reproduce. Interpolation's target holds every point, the observed ones included (the metric
        of Rubanova et al. 2019, Table 3); extrapolation's targets are all unobserved."""
        position = torch.searchsorted(self.target.times, self.observed.times).clamp_max(len(self.target.times) - 1)
        shared = self.target.times[position] == self.observed.times
        seen = torch.zeros_like(self.target.mask)
        seen[:, position[shared]] = self.observed.mask[:, shared]
        return self.target.with_mask(1 - seen)


def interpolation_task(batch: IrregularBatch, fraction: float, *, generator: torch.Generator | None = None) -> Task:
    """Observe a `fraction` of each series' points; predict all of them (Rubanova et al. 2019, Sec. 5)."""
    return Task(subsample(batch, fraction, generator=generator), batch)


def extrapolation_task(batch: IrregularBatch, fraction: float = 1.0, *, split: float | None = None,
                       generator: torch.Generator | None = None) -> Task:
    """Observe a `fraction` of each series' points before `split` (default: the first half of the
    batch's time points); predict the points from `split` on."""
    if len(batch.times) < 2:
        raise ValueError("extrapolation needs at least two time points")
    split = float(batch.times[len(batch.times) // 2]) if split is None else float(split)
    before = batch.between(-float("inf"), split)
    after = batch.between(split, float("inf"))
    if len(before.times) == 0 or len(after.times) == 0:
        raise ValueError(f"split={split} leaves no time point on one side of [{batch.times[0]}, {batch.times[-1]}]")
    keep = before.observed.any(dim=1) & after.observed.any(dim=1)
    if not bool(keep.all()):
        raise ValueError(f"series {torch.nonzero(~keep).flatten().tolist()} are not observed on both sides of split={split}")
    return Task(subsample(before, fraction, generator=generator), after)


def series_variables(ds: xr.Dataset) -> list[str]:
    """The data variables whose first dims are (series, time), in order."""
    return [name for name in ds.data_vars if ds[name].dims[:2] == ("series", "time")]
