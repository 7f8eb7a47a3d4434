"""Training: the loop shared by every fit, its checkpoint store and its progress display."""

from .loop import (
    OPTIMIZERS, FitError, Loop, Run, StepFailed, TrainingResult, check_optimizer, fingerprint, history_dataset,
    make_optimizer, train,
)
from .progress import Progress

__all__ = [
    "OPTIMIZERS", "FitError", "Loop", "Progress", "Run", "StepFailed", "TrainingResult", "check_optimizer",
    "fingerprint", "history_dataset", "make_optimizer", "train",
]
