"""Training: the loop shared by every fit, its updates (first-order optimisers, Levenberg-Marquardt),
its checkpoint store and its progress bar."""

from .least_squares import Iteration, LeastSquaresProblem, LevenbergMarquardt, NormalEquations
from .fingerprint import Fingerprint, fingerprint
from .loop import FitError, Loop, Run, TrainingResult, check_run, history_dataset, train
from .progress import progress_bar
from .updates import (
    OPTIMIZERS, GradientUpdate, LeastSquaresUpdate, StepFailed, Update, check_optimizer, make_optimizer,
)

__all__ = [
    "OPTIMIZERS", "FitError", "Fingerprint", "GradientUpdate", "Iteration", "LeastSquaresProblem", "LeastSquaresUpdate",
    "LevenbergMarquardt", "Loop", "NormalEquations", "Run", "StepFailed", "TrainingResult", "Update",
    "check_optimizer", "check_run", "fingerprint", "history_dataset", "make_optimizer", "progress_bar", "train",
]
