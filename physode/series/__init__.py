"""Series: the Dataset conventions and files, irregular batches, time grids for batches of series,
losses over observed entries, and trivial baselines."""

from .baselines import compare_with_baselines, feature_mean, hold_last
from .irregular import (
    IrregularBatch, Task, extrapolation_task, interpolation_task, series_variables, subsample, subsample_dataset,
)
from .losses import PENALTIES, gaussian_log_likelihood, masked_loss, masked_mean, mse
from .timegrid import GRIDS, integrate_series, solve_series

__all__ = [
    "GRIDS", "PENALTIES", "IrregularBatch", "Task", "compare_with_baselines", "extrapolation_task", "feature_mean", "gaussian_log_likelihood",
    "hold_last", "integrate_series", "interpolation_task", "masked_loss", "masked_mean", "mse", "series_variables",
    "solve_series", "subsample", "subsample_dataset",
]
