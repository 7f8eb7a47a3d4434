"""The training loop shared by every fit: shuffled mini-batches of series, failed updates skipped
and undone, the best epoch kept, progress, callbacks, early stopping, learning-rate decay, and
checkpoints that resume exactly where an interrupted run stopped."""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import xarray as xr
from torch import nn

from ..files import check_target
from ..checks import check_count, check_flag
from ..solve import SolverError
from . import store
from .distributed import Group, RankFailed
from .fingerprint import Fingerprint
from .progress import progress_bar
from .updates import StepFailed, Update

class FitError(RuntimeError):
    """The fit could not go on (repeated failed updates, no finite loss, or a starting point that
    cannot be integrated); `result` holds what it had reached (None where it could not start)."""

    def __init__(self, message: str, result):
        super().__init__(message)
        self.result = result


@dataclass
class Run:
    """Where a training run stands: what a checkpoint holds, and what the caller's result reports."""

    epoch: int = 0
    updates: int = 0
    seconds: float = 0.0
    history: dict = field(default_factory=dict)
    best: dict | None = None
    since_best: int = 0
    other_bests: dict = field(default_factory=dict)  # the best epoch of each objective the update has left
    stop_reason: str = ""
    keep_last: bool = False  # the modules stay at the last epoch rather than going back to the best

    @property
    def best_epoch(self) -> int:
        """The epoch whose modules the model holds after fitting."""
        if self.keep_last:
            return self.epoch
        return 0 if self.best is None else self.best["epoch"]


@dataclass(kw_only=True)
class TrainingResult:
    """What a fit returns. `history`: an xarray.Dataset over `epoch` with the training loss, the
    validation loss (NaN without validation), the seconds per epoch, the optimiser's own entries
    (the learning rate, or Levenberg-Marquardt's damping and stopping distances) and any further
    entries; `best_epoch` is the one whose modules the model holds after fitting; `stop_reason`
    says why the fit stopped: "converged: ftol" (or xtol, gtol), "max_epochs", "early stopping:
    patience", "callback", "interrupted" or "failed"; `solves` counts the ODE solves it took,
    where the fit records them in its history (a solve with its gradient or its Jacobian counts once)."""

    history: xr.Dataset
    best_epoch: int
    epochs: int
    seconds: float
    stop_reason: str = ""
    solves: int = 0

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason.startswith(("early stopping", "callback"))

    @staticmethod
    def fields(run: Run, units: dict[str, str | None] | None = None) -> dict:
        """The fields of a result from a finished run; `units` of history entries become attributes."""
        return {"history": history_dataset(run.history, units or {}), "best_epoch": run.best_epoch, "epochs": run.epoch,
                "seconds": run.seconds, "stop_reason": run.stop_reason,
                "solves": int(sum(run.history.get("solves", [])))}


def history_dataset(history: dict, units: dict[str, str | None]) -> xr.Dataset:
    """Per-epoch entries as a Dataset over `epoch`; an array entry gets dims <name>_0, <name>_1, ..."""
    variables = {}
    for key, values in history.items():
        array = np.asarray(values, dtype=float)
        dims = ("epoch", *(f"{key}_{i}" for i in range(array.ndim - 1)))
        variables[key] = xr.Variable(dims, array, {"units": units[key]} if units.get(key) else {})
    return xr.Dataset(variables, coords={"epoch": np.arange(1, len(history.get("loss", [])) + 1)})


@dataclass
class Loop:
    """What to train and how.

    `update` (a GradientUpdate or LeastSquaresUpdate) updates the modules' parameters on the
    series `index` (a tensor of positions) and returns the batch's loss; `validation_loss(run)`
    gives a float or None; `entries(run)` the extra history entries of an epoch (e.g. physical
    parameters); `message(logs)` the progress text. `progress`: True, False, or None for a
    progress bar only when stderr is a terminal. `keep`: "best" sets the modules to the best epoch
    after fitting (lowest validation loss, else training loss), "last" leaves them at the last.
    `group`: the ranks of a data-parallel fit (physode.training.distributed); rank 0 shows the
    progress, runs the callbacks and writes the checkpoint, and every rank reads it to resume.
    """

    modules: Sequence[nn.Module]
    update: Update
    series: int
    validation_loss: Callable[[Run], float | None] = lambda run: None
    entries: Callable[[Run], dict] = lambda run: {}
    message: Callable[[dict], str] = lambda logs: f"loss {logs['loss']:.4g}"
    epochs: int = 100
    batch_size: int | None = None
    seed: int = 0
    patience: int | None = None
    max_failures: int = 5
    callbacks: Sequence[Callable] = ()
    progress: bool | None = None
    device: torch.device | None = None
    keep: str = "best"
    group: Group = Group()


def check_run(seed, progress, callbacks, resume) -> None:
    """The arguments every fit passes to the training loop, checked at the fit's call."""
    check_count("seed", seed, minimum=0)
    if progress is not None:
        check_flag("progress", progress)
    if callable(callbacks) or not isinstance(callbacks, Sequence) or not all(map(callable, callbacks)):
        raise TypeError(f"callbacks must be a list of callables callback(epoch, logs), got {callbacks!r}")
    if not (resume is True or resume is False or resume == "force"):
        raise ValueError(f"resume must be True, False or 'force', got {resume!r}")


def train(loop: Loop, *, checkpoint=None, resume: bool | str = False, fingerprint: Fingerprint = Fingerprint(""),
          result: Callable[[Run], object] = lambda run: run):
    """Run `loop` until its update converges, the last epoch, an early stop, or a
    KeyboardInterrupt; return result(run) with the modules set to their best epoch (lowest
    validation loss, else training loss), or left at the last with loop.keep == "last".

    An update that fails (a loss or gradient that is not finite, a failed solve) is skipped with a
    warning: the parameters and the update's state go back to their last good values and the
    update recovers (a halved learning rate, a larger damping); `max_failures` failures in a row
    raise FitError carrying result(run), and so does a run whose every epoch failed.

    `resume`: True continues from `checkpoint` when it exists and was written by the same fit (the
    same `fingerprint`); "force" continues from it whatever its fingerprint, for a fit whose
    settings include callables a checkpoint cannot identify (lambdas, local functions).
    """
    if checkpoint is not None:
        check_target("checkpoint", checkpoint)
    group = loop.group
    # the settings that decide which collectives a rank takes part in must agree, as must the fit
    control = (loop.series, loop.epochs, loop.batch_size, loop.seed, loop.patience, loop.max_failures, loop.keep,
               len(loop.callbacks), checkpoint is not None, bool(resume))
    group.check_same(hashlib.sha256(f"{fingerprint.digest}{control}".encode()).hexdigest(), loop.device)
    generator = torch.Generator().manual_seed(loop.seed)
    run = Run()
    found = checkpoint is not None and bool(resume) and os.path.exists(checkpoint)
    holders = group.count(found, loop.device)
    if 0 < holders < group.size:
        raise ValueError(f"the checkpoint {os.fspath(checkpoint)} exists for {holders} of the {group.size} ranks: to "
                         "resume, every rank must read it (a filesystem shared by the ranks)")
    if holders:
        error = None
        try:
            run = _restore(checkpoint, fingerprint, resume, loop, generator)
        except (ValueError, OSError) as failure:
            error = failure
        group.agree(error, loop.device)
    group.broadcast(loop.modules)
    run.keep_last = loop.keep == "last"
    bar = progress_bar(loop.epochs, loop.progress if group.main else False, initial=run.epoch)
    failures, last_error = 0, None
    try:
        while run.epoch < loop.epochs and not run.stop_reason:
            started = time.perf_counter()
            order = torch.randperm(loop.series, generator=generator).to(loop.device)
            size = loop.batch_size or loop.series
            total, counted = 0.0, 0
            for first in range(0, loop.series, size):
                index = order[first:first + size]
                snapshot = _snapshot(loop)
                try:
                    value = loop.update(index, run)
                except (SolverError, StepFailed, FloatingPointError, RankFailed) as error:
                    failures, last_error = failures + 1, error
                    _restore_snapshot(snapshot, loop)
                    change = loop.update.recover()
                    if group.main:
                        warnings.warn(f"fit: epoch {run.epoch + 1}: update skipped ({error}); parameters restored, "
                                      f"{change}", RuntimeWarning, stacklevel=3)
                    if failures >= loop.max_failures:
                        run.stop_reason = "failed"
                        raise FitError(f"fit stopped after {failures} failed updates in a row at epoch {run.epoch + 1}; "
                                       f"the last: {error}. Check the initial parameters, lower lr, or loosen rtol/atol",
                                       _finish(run, loop, result)) from error
                    continue
                failures = 0
                run.updates += 1
                total, counted = total + value * len(index), counted + len(index)
            run.epoch += 1
            train_loss = total / counted if counted else math.nan
            val_loss = loop.validation_loss(run)
            seconds = time.perf_counter() - started
            run.seconds += seconds
            entry = {"loss": train_loss, "val_loss": math.nan if val_loss is None else val_loss, "seconds": seconds,
                     **loop.update.end_epoch(), **loop.entries(run)}
            for key, value in entry.items():
                run.history.setdefault(key, []).append(value)
            score = val_loss if val_loss is not None else train_loss
            score = score if math.isfinite(score) else math.inf  # an epoch of failed updates is never the best
            objective = loop.update.objective  # losses are compared only within one objective
            if run.best is not None and objective != run.best["objective"]:
                run.other_bests[run.best["objective"]] = run.best
                run.best = run.other_bests.pop(objective, None)
            if run.best is None or score < run.best["score"]:
                run.best = {"epoch": run.epoch, "score": score, "objective": objective,
                            "modules": [_clone(m.state_dict()) for m in loop.modules]}
                run.since_best = 0
            else:
                run.since_best += 1
            logs = {**entry, "epoch": run.epoch, "loss": train_loss, "val_loss": val_loss}
            if loop.update.converged:
                run.stop_reason = f"converged: {loop.update.converged}"
            elif _callbacks_stop(loop, run.epoch, logs):
                run.stop_reason = "callback"
            elif loop.patience is not None and run.since_best >= loop.patience:
                run.stop_reason = f"early stopping: patience {loop.patience}"
            elif run.epoch >= loop.epochs:
                run.stop_reason = "max_epochs"
            if checkpoint is not None:
                _on_main(group, loop.device, lambda: _save(checkpoint, fingerprint, run, loop, generator))
            bar.set_postfix_str(loop.message(logs), refresh=False)
            bar.update(1)
    except KeyboardInterrupt:
        run.stop_reason = "interrupted"
    finally:
        bar.close()
    if run.epoch and run.stop_reason != "interrupted" and not any(map(math.isfinite, run.history["loss"])):
        run.stop_reason = "failed"
        raise FitError(f"fit: none of its {run.epoch} epochs had a finite loss; the last failure: {last_error}. Check "
                       "the initial parameters and the data, lower lr, or loosen rtol/atol", _finish(run, loop, result))
    return _finish(run, loop, result)


def _on_main(group: Group, device, work: Callable[[], object]):
    """work() on rank 0 alone; its result there (None elsewhere), and its exception on every rank."""
    value, error = None, None
    if group.main:
        try:
            value = work()
        except BaseException as failure:  # noqa: BLE001 - raised on every rank by agree
            error = failure
    group.agree(error, device)
    return value


def _callbacks_stop(loop: Loop, epoch: int, logs: dict) -> bool:
    """Whether a callback (run on rank 0) asks to stop; every rank gets the answer."""
    if not loop.callbacks:
        return False
    stop = _on_main(loop.group, loop.device, lambda: any(callback(epoch, logs) for callback in loop.callbacks))
    return loop.group.any(bool(stop), loop.device)


def _finish(run: Run, loop: Loop, result: Callable[[Run], object]):
    if run.best is not None and not run.keep_last:
        for module, saved in zip(loop.modules, run.best["modules"]):
            module.load_state_dict(saved)
    return result(run)


def _snapshot(loop: Loop) -> tuple:
    return [_clone(m.state_dict()) for m in loop.modules], copy.deepcopy(loop.update.state_dict())


def _restore_snapshot(snapshot, loop: Loop) -> None:
    states, optimizer_state = snapshot
    for module, saved in zip(loop.modules, states):
        module.load_state_dict(saved)
    loop.update.load_state_dict(optimizer_state)


def _clone(state_dict) -> dict:
    return {k: v.detach().clone() for k, v in state_dict.items()}


CHECKPOINT_KEYS = frozenset({"fingerprint", "epoch", "updates", "seconds", "history", "since_best", "best",
                             "other_bests", "stop_reason", "modules", "optimizer", "generator"})


def _save(path, fingerprint: Fingerprint, run: Run, loop: Loop, generator) -> None:
    store.save(path, {
        "fingerprint": fingerprint.digest, "epoch": run.epoch, "updates": run.updates, "seconds": run.seconds,
        "history": run.history, "since_best": run.since_best, "best": run.best, "other_bests": run.other_bests,
        "stop_reason": run.stop_reason,
        "modules": [m.state_dict() for m in loop.modules], "optimizer": loop.update.state_dict(),
        "generator": generator.get_state(),
    })


def _restore(path, fingerprint: Fingerprint, resume: bool | str, loop: Loop, generator) -> Run:
    """The run saved in the checkpoint at `path`, with the modules, update and generator set from it."""
    saved = store.load(path)
    path = os.fspath(path)
    missing = sorted(CHECKPOINT_KEYS - set(saved)) if isinstance(saved, dict) else sorted(CHECKPOINT_KEYS)
    if missing:
        raise ValueError(f"{path} is not a checkpoint of a fit (it lacks {missing}); delete it or pass resume=False "
                         "to start over")
    if resume != "force":
        if fingerprint.unnamed:
            raise ValueError(f"cannot tell whether the checkpoint {path} was written by this fit: its "
                             f"{', '.join(fingerprint.unnamed)} is a lambda or local function, which a checkpoint "
                             "cannot identify. Pass resume='force' to continue from it if the fit is the same, "
                             "or define the callable at module level")
        if saved["fingerprint"] != fingerprint.digest:
            raise ValueError(f"the checkpoint {path} was written by a different fit (other data, model or settings); "
                             "pass resume=False to start over, or another checkpoint path")
    try:
        if len(saved["modules"]) != len(loop.modules):
            raise ValueError(f"{len(saved['modules'])} modules, this fit has {len(loop.modules)}")
        for module, state_dict in zip(loop.modules, saved["modules"]):
            module.load_state_dict(state_dict)
        loop.update.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"the checkpoint {path} holds the state of another model or optimiser: {error}") from None
    return Run(epoch=saved["epoch"], updates=saved["updates"], seconds=saved["seconds"],
               history={k: list(v) for k, v in saved["history"].items()}, best=saved["best"],
               since_best=saved["since_best"], other_bests=saved["other_bests"],
               # a fit that ran out of epochs continues when given more; a converged one stays converged
               stop_reason="" if saved["stop_reason"] == "max_epochs" else saved["stop_reason"])
