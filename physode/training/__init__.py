"""Training: the loop shared by every fit, its updates (first-order optimisers, Levenberg-Marquardt),
its checkpoint store, its progress bar, and its ranks on torch.distributed."""

from .distributed import Group, RankFailed, process_group
from .least_squares import Iteration, LeastSquaresProblem, LevenbergMarquardt, NormalEquations
from .fingerprint import Fingerprint, fingerprint
from .loop import FitError, Loop, Run, TrainingResult, check_run, history_dataset, train
from .progress import progress_bar
from .updates import (
    OPTIMIZERS, GradientUpdate, LeastSquaresUpdate, Partial, StepFailed, Update, check_optimizer, make_optimizer, mean_of,
)

__all__ = [
    "OPTIMIZERS", "FitError", "Fingerprint", "GradientUpdate", "Group", "Iteration", "LeastSquaresProblem",
    "LeastSquaresUpdate", "LevenbergMarquardt", "Loop", "NormalEquations", "Partial", "RankFailed", "Run", "StepFailed",
    "TrainingResult", "Update", "check_optimizer", "check_run", "fingerprint", "history_dataset", "make_optimizer",
    "mean_of", "process_group", "progress_bar", "train",
]
