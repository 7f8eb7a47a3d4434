"""How the training loop updates the unknowns on a batch: a first-order optimiser on a scalar loss
(`GradientUpdate`), or Levenberg-Marquardt on residuals (`LeastSquaresUpdate`). Each owns its
optimiser's state, recovers from a failed update, and reports its own history entries."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ..solve import SolverError
from .distributed import Group, RankFailed
from .least_squares import LeastSquaresProblem, LevenbergMarquardt

OPTIMIZERS = {
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adamax": torch.optim.Adamax, "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    # L-BFGS with a strong-Wolfe line search, for deterministic, smooth fits of a few parameters;
    # its absolute stopping tolerances are off (a well-fitted loss can be far below 1e-9)
    "lbfgs": functools.partial(torch.optim.LBFGS, line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0),
}


class StepFailed(RuntimeError):
    """An update whose loss or gradient is not finite."""


def mean_of(sums: Tensor) -> Tensor:
    """sums[0] / sums[1]: a total over a batch's entries divided by their count (or weight)."""
    return sums[0] / sums[1].clamp_min(torch.finfo(sums.dtype).tiny)


@dataclass(frozen=True)
class Partial:
    """A batch's loss as a function of sums over its series, loss = combine(sums): each rank sums
    over its share of the batch, and the loss of the whole batch is combine(the ranks' total).
    The default `combine` is mean_of, for a mean over the batch's entries."""

    sums: Tensor
    combine: Callable[[Tensor], Tensor] = mean_of


class Update(Protocol):
    """One update of the unknowns on the batch `index`, returning the batch's loss.

    `recover()` is called after a failed update (the unknowns and this state already restored)
    and says what it changed; `end_epoch()` returns the epoch's history entries of this update
    (and decays what decays per epoch); `converged` names the stopping test that was met, if any;
    `objective` names what the loss of the current stage measures (the best epoch is kept per
    objective, and losses of different objectives are never compared).
    """

    converged: str | None
    objective: int

    def __call__(self, index: Tensor, run) -> float: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...

    def recover(self) -> str: ...

    def end_epoch(self) -> dict: ...


class GradientUpdate:
    """A torch optimiser step on the loss of `batch_loss(index, share, run)`, a Partial over the
    series index[share] of the batch `index` (`share`: this rank's positions in it, possibly none,
    then with zero sums). Over the ranks of `group` the sums and the gradients are added, so every
    rank takes the step of the whole batch. The learning rate is halved after a failed update and
    multiplied by `lr_decay` after every epoch (not below `min_lr`). With `ftol` > 0 (for a
    deterministic optimiser on the whole data set, such as L-BFGS) the fit has converged once an
    epoch lowers the loss by no more than ftol relative to it."""

    objective = 0

    def __init__(self, optimizer: torch.optim.Optimizer, batch_loss: Callable, lr_decay: float = 1.0,
                 min_lr: float = 0.0, ftol: float = 0.0, group: Group = Group()):
        self.optimizer, self.batch_loss, self.lr_decay, self.min_lr = optimizer, batch_loss, lr_decay, min_lr
        self.ftol, self.converged, self.group = ftol, None, group
        self._losses: list[float] = []

    def __call__(self, index: Tensor, run) -> float:
        values = []
        trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        share = self.group.positions(len(index), index.device)

        def closure():
            self.optimizer.zero_grad()
            partial, error = None, None
            try:
                partial = self.batch_loss(index, share, run)
            except (SolverError, FloatingPointError) as failure:
                error = failure
            self.group.agree(error, index.device)
            total = self.group.sum(partial.sums.detach().clone()).requires_grad_()
            loss = partial.combine(total)
            if not bool(torch.isfinite(loss)):
                raise StepFailed(f"loss is {loss.item()}")
            (weights,) = torch.autograd.grad(loss, total)
            try:
                if partial.sums.requires_grad:
                    partial.sums.backward(weights)  # this rank's part of d loss / d parameters
            except (SolverError, FloatingPointError) as failure:
                error = failure
            self.group.agree(error, index.device)
            self._sum_gradients(trainable)
            if not all(bool(torch.isfinite(p.grad).all()) for p in trainable if p.grad is not None):
                raise StepFailed("gradient is not finite")
            values.append(loss.item())
            return loss.detach()

        self.optimizer.step(closure)
        self._losses.append(values[0])
        return values[0]

    def _sum_gradients(self, trainable: list[Tensor]) -> None:
        """Every rank's gradients, added over the ranks in one collective."""
        if self.group.size == 1:
            return
        for p in trainable:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = self.group.sum(torch.cat([p.grad.reshape(-1) for p in trainable]))
        for p, summed in zip(trainable, flat.split([p.numel() for p in trainable])):
            p.grad.copy_(summed.reshape(p.shape))

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "losses": list(self._losses), "converged": self.converged}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self._losses, self.converged = list(state["losses"]), state["converged"]

    def recover(self) -> str:
        for group in self.optimizer.param_groups:
            group["lr"] *= 0.5
        return f"learning rate halved to {self.optimizer.param_groups[0]['lr']:.3g}"

    def end_epoch(self) -> dict:
        """{"lr": the epoch's learning rate} and, with ftol, the "relative_reduction" of the loss at the
        start of the last two epochs, which the ftol test compares."""
        entries = {"lr": self.optimizer.param_groups[0]["lr"]}
        if self.ftol:
            before, after = self._losses[-2:] if len(self._losses) >= 2 else (math.nan, math.nan)
            entries["relative_reduction"] = (before - after) / abs(before) if before else math.nan
            if entries["relative_reduction"] <= self.ftol:
                self.converged = "ftol"
        self._losses = self._losses[-1:]
        for group in self.optimizer.param_groups:
            group["lr"] = max(group["lr"] * self.lr_decay, self.min_lr)
        return entries


class LeastSquaresUpdate:
    """One accepted Levenberg-Marquardt step on the residuals of the whole data set (the batch
    index is not used); the loss is |r|^2 after the step.

    The problems are solved in stages: when Levenberg-Marquardt converges on problems[stage] at
    cost F and `advance(stage, F)` is true (it may prepare the next problem), it goes on with the
    next problem from where it stands, with a fresh damping. A problem that comes back (single
    shooting before and after multiple shooting) is the same objective, so its best epoch is the
    best of both stages.
    """

    def __init__(self, problems: Sequence[LeastSquaresProblem], ftol: float, xtol: float, gtol: float,
                 advance: Callable[[int, float], bool] = lambda stage, cost: False):
        self.problems, self.advance, self.tolerances = list(problems), advance, (ftol, xtol, gtol)
        self.stage = 0
        self.method = self._method()
        self.last = None
        self.objective = self.stepped = 0  # the objective and stage of the last step

    def _objective(self, stage: int) -> int:
        return next(i for i, p in enumerate(self.problems) if p is self.problems[stage])

    def _method(self) -> LevenbergMarquardt:
        return LevenbergMarquardt(*self.tolerances, recoverable=(SolverError, RankFailed))

    @property
    def converged(self) -> str | None:
        return self.method.converged

    def __call__(self, index: Tensor, run) -> float:
        self.last = self.method.step(self.problems[self.stage])
        loss, self.objective, self.stepped = 2.0 * self.last.cost, self._objective(self.stage), self.stage
        if self.method.converged and self.stage + 1 < len(self.problems) and self.advance(self.stage, self.last.cost):
            self.stage += 1
            self.method = self._method()
        return loss

    def state_dict(self) -> dict:
        return {"stage": self.stage, "objective": self.objective, "method": self.method.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.stage, self.objective = state["stage"], state["objective"]
        self.method.load_state_dict(state["method"])

    def recover(self) -> str:
        self.method.damping *= 10.0
        return f"damping raised to {self.method.damping:.3g}"

    def end_epoch(self) -> dict:
        last = self.last
        return {"damping": last.damping, "relative_reduction": last.relative_reduction,
                "relative_step": last.relative_step, "gradient_cosine": last.cosine, "trials": last.trials,
                "stage": self.stepped}


def check_optimizer(optimizer, extra: tuple[str, ...] = ()) -> None:
    if not (optimizer in (*OPTIMIZERS, *extra) if isinstance(optimizer, str) else callable(optimizer)):
        raise ValueError(f"optimizer must be one of {sorted((*OPTIMIZERS, *extra))} or a factory (params, lr) -> Optimizer, "
                         f"got {optimizer!r}")


def make_optimizer(optimizer, trainable: list[Tensor], lr: float) -> torch.optim.Optimizer:
    return OPTIMIZERS[optimizer](trainable, lr=lr) if isinstance(optimizer, str) else optimizer(trainable, lr)
