"""Fitting a System to observed trajectories: mini-batches of series, masked losses, multiple
shooting, validation and early stopping, progress, and checkpoints that survive interruption."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from ..checks import check_count, check_fit_tolerance, check_fraction, check_real
from ..grad import GradientMethod
from ..series import dataset
from ..solve import SolverError
from ..series.losses import check_penalty, masked_sums
from ..training import (
    FitError, Fingerprint, GradientUpdate, Group, LeastSquaresUpdate, Loop, Partial, TrainingResult, check_optimizer,
    check_run, fingerprint, make_optimizer, mean_of, process_group, train,
)
from .estimates import InitialState
from .report import parameter_report
from .residuals import SystemResiduals
from .shooting import (
    AUTOMATIC_WINDOW, noise_level, node_starts, shooting_sums, stalled, start_nodes, windows, with_continuity,
)


@dataclass(kw_only=True)
class FitResult(TrainingResult):
    """What `fit` returns: the TrainingResult, whose history also holds every physical parameter's
    value per epoch, and `parameters`: the physical values at the best epoch (lowest validation
    loss, else lowest training loss), which the system holds after fitting; `initial_state`: the
    fitted state of every series at the first time, a Dataset (series, *dims). `report()` gives
    standard errors."""

    parameters: dict[str, Tensor]
    initial_state: xr.Dataset
    _report: Callable | None = field(default=None, repr=False)

    def report(self, **solver):
        """Fitted physical parameters with Gauss-Newton standard errors (a pandas DataFrame), from
        the exact Jacobian of solves with the fit's solver settings; `solver` keywords (method,
        rtol, atol, options) override them, e.g. tighter tolerances for the Jacobian."""
        return self._report(**solver)


@dataclass
class _Batch:
    index: Tensor
    observed: dict[str, Tensor]


LEAST_SQUARES = "levenberg_marquardt"
# epochs and learning rate by optimizer, where the call gives none (measured in docs/benchmarks.md)
DEFAULTS = {LEAST_SQUARES: {"epochs": 100}, "lbfgs": {"epochs": 50, "lr": 1.0}, "first-order": {"epochs": 300, "lr": 1e-2}}
MAX_LEAST_SQUARES_UNKNOWNS = 5000  # shared by every series, and of each series: the normal equations' blocks


def fit(
    system, data, *, epochs: int | None = None, optimizer: str | Callable = "auto", lr: float | None = None,
    batch_size: int | None = None, loss: str | Callable = "mse", time_weight=None,
    gradient: str | GradientMethod = "aca", method: str = "dopri5", rtol: float = 1e-6, atol: float = 1e-8,
    options: dict | None = None, ftol: float = 1e-8, xtol: float = 1e-8, gtol: float = 1e-8,
    validation: float | None = None, patience: int | None = None, shooting: int | str | None = "auto",
    continuity: float = 1.0,
    initial_state=None, learn_initial_state: str = "all", progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None, resume: bool | str = False, callbacks: Sequence[Callable] = (),
    seed: int = 0, max_failures: int = 5, distributed: bool | None = None,
) -> FitResult:
    """Fit every free parameter of `system` (physical Parameters, learned terms, and the initial
    states of the series where they are not observed) to `data`, an xarray.Dataset of
    observations (NaN = not observed).

    - `optimizer`: "auto" (default) is Levenberg-Marquardt when the system has no learned term,
      the loss is "mse" and the whole data set is one batch: least squares on the exact Jacobian
      of the residuals from forward sensitivities (physode.jvp), stopping on `ftol`, `xtol` or
      `gtol` with the meanings of scipy.optimize.least_squares. With learned terms it is L-BFGS
      (strong-Wolfe line search; stops on `ftol` too), and with mini-batches Adam. Or a name in
      OPTIMIZERS, "levenberg_marquardt", or a factory `params, lr -> Optimizer`.
    - `epochs`: at most this many epochs (default: 100 per stage for Levenberg-Marquardt, whose
      epoch is one accepted step; 50 for L-BFGS, whose epoch is up to 20 iterations; 300
      otherwise);
      `lr` (first-order only; default 1 for L-BFGS, 1e-2 otherwise); `batch_size` (series per
      update; default all); `seed` (the order of the batches).
    - `loss`: "mse", "mae", "huber" or a callable of the residual, averaged over observed entries;
      `time_weight`: weights per time point (an array, or a callable of the time tensor).
    - `method`, `rtol`, `atol`, `options`: the solver of every integration; `gradient`: how a
      first-order optimiser differentiates them (the Jacobian of least squares is forward-mode).
    - `validation`: a fraction of the time points, the last ones, held out; the best epoch is the
      one with the lowest validation loss, and `patience` epochs without improvement stop the fit.
    - `shooting`: multiple shooting with windows of this many time intervals, each starting from
      a fitted state, plus `continuity` times the mean squared mismatch where windows meet (with
      Levenberg-Marquardt, followed by a single shooting fit from there, which removes the bias
      of the penalty). "auto" (default): with Levenberg-Marquardt, a single shooting fit that
      stalls (residuals above 3 times the noise level estimated from the data) turns to windows
      of 10 intervals, then fits again by single shooting; with other optimizers, none.
    - `initial_state`: starting values (a mapping or Dataset) for states not observed at the
      first time (default: `system.initial_guess`); `learn_initial_state`: "all" (default: every
      entry is fitted, starting from the first observation where there is one, which is noisy
      like the others), "unobserved" (observed entries are held at the first observation) or
      "none".
    - `progress`: a progress bar (None: only when stderr is a terminal).
    - `checkpoint`: a file written atomically after every epoch; `resume=True` continues from it
      exactly where an interrupted fit stopped, if the same fit wrote it (data, model, settings);
      `resume="force"` continues from it without that test, for fits whose `loss`, `optimizer` or
      `time_weight` is a lambda or local function, which a checkpoint cannot identify. A
      KeyboardInterrupt returns the result so far.
    - `callbacks`: called as callback(epoch, logs) after each epoch; a true return stops the fit.
    - `distributed`: None (default) fits data-parallel on the ranks of torch.distributed where a
      launcher such as torchrun started this process (or a process group is initialised), else in
      this process; True requires the ranks; False fits in this process alone. Each rank takes its
      share of the series of every batch; the ranks add the loss's sums and the gradients (or
      Levenberg-Marquardt's J^T J and J^T r), so every rank takes the same steps as one process
      would; rank 0 shows the progress, runs the callbacks and writes the checkpoint, which
      resumes on any number of ranks.

    The result says why the fit stopped (`stop_reason`) and how many solves it took (`solves`).
    A first-order update whose loss or gradient is not finite, or whose solve fails, is skipped
    with a warning: the parameters go back to the last good ones and the learning rate is halved;
    a Levenberg-Marquardt trial point where that happens is rejected and the damping raised.
    `max_failures` failures in a row stop the fit with a FitError carrying the result so far.
    """
    penalty = check_penalty(loss)
    check_optimizer(optimizer, extra=("auto", LEAST_SQUARES))
    check_run(seed, progress, callbacks, resume)
    reference = next(iter(system.parameters()), None)
    dtype = reference.dtype if reference is not None else torch.get_default_dtype()
    device = reference.device if reference is not None else torch.device("cpu")
    times, observed = dataset.observations(data, system, dtype, device)
    series_count, time_count = next(iter(observed.values())).shape[:2]
    if time_count < 2:
        raise ValueError(f"data has {time_count} time point; a fit needs at least two")
    group = process_group(distributed, device)
    if series_count < group.size:
        raise ValueError(f"data has {series_count} series for {group.size} ranks; a distributed fit needs at least "
                         "one series per rank")
    optimizer = _choose_optimizer(optimizer, system, loss, batch_size, series_count)
    least_squares = optimizer == LEAST_SQUARES
    defaults = DEFAULTS.get(optimizer, DEFAULTS["first-order"]) if isinstance(optimizer, str) else DEFAULTS["first-order"]
    _check_arguments(epochs, lr, least_squares, loss, batch_size, series_count, validation, patience, shooting,
                     continuity, max_failures, ftol, xtol, gtol)
    lr = defaults.get("lr") if lr is None else lr
    train_count = time_count - (round(validation * time_count) if validation else 0)
    if validation and not 2 <= train_count < time_count:
        raise ValueError(f"validation={validation} leaves {train_count} of {time_count} time points for training; need 2 or more")
    automatic = shooting == "auto"
    window = (AUTOMATIC_WINDOW if least_squares else None) if automatic else shooting
    if window is not None and window > (train_count - 1) // 2:
        window = None  # fewer than two windows
    weight = _time_weight(time_weight, times)
    solver = {"gradient": gradient, "method": method, "rtol": rtol, "atol": atol, "options": options}

    guess = _initial_guess(system, times, observed, initial_state, dtype, device)
    first = {name: values[:, 0] for name, values in observed.items()}
    estimates = InitialState(first, guess, learn_initial_state).to(device)
    train_times = times[:train_count]
    train_observed = {name: values[:, :train_count] for name, values in observed.items()}
    try:
        nodes = start_nodes(system, estimates, train_times, train_observed, window, solver) if window else None
    except SolverError as error:
        raise FitError(f"fit: the system cannot be integrated from its starting values ({error}); choose other "
                       "initial parameter values or initial_state", None) from error
    modules = [system, estimates] + ([nodes] if nodes is not None else [])
    trainable = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("nothing to fit: the system has no free parameter and every initial state is fixed")
    fingerprint = _fingerprint(system, data, weight, dict(
        solver, loss=loss, batch_size=batch_size, validation=validation, shooting=shooting, continuity=continuity,
        seed=seed, optimizer=optimizer, lr=lr, learn=learn_initial_state, tolerances=(ftol, xtol, gtol),
        time_weight=time_weight if callable(time_weight) else None))
    train_weight = weight[:train_count] if weight is not None else None
    tally = _Tally()
    combine = mean_of if nodes is None else functools.partial(with_continuity, continuity)

    def batch_loss(index: Tensor, share: Tensor, run) -> Partial:
        if not len(share):  # a last batch with fewer series than ranks: zero sums
            return Partial(times.new_zeros(2 if nodes is None else 4), combine)
        index = index[share]
        batch = _Batch(index, {name: values[index] for name, values in train_observed.items()})
        start = estimates(batch.index)
        if nodes is None:
            tally.add()
            predicted = system.integrate(start, train_times, **solver)
            return Partial(masked_sums(predicted, batch.observed, penalty, train_weight), combine)
        tally.count += len(windows(train_count, window))
        return Partial(shooting_sums(system, start, nodes, batch, train_times, window, penalty, train_weight, solver),
                       combine)

    def validation_loss(run) -> float | None:
        if not validation:
            return None
        tally.add()
        mine, predicted, error = group.positions(series_count, device), None, None
        try:
            with torch.no_grad():
                predicted = system.integrate(estimates(mine), times, **solver)
        except SolverError as failure:
            error = failure
        group.agree(error, device)
        tail = {name: values[mine, train_count:] for name, values in observed.items()}
        sums = masked_sums({n: p[:, train_count:] for n, p in predicted.items()}, tail, penalty,
                           weight[train_count:] if weight is not None else None)
        return mean_of(group.sum(sums)).item()

    if least_squares:
        def problem(shoot: int | None) -> SystemResiduals:
            spans = windows(train_count, shoot) if shoot else [(0, train_count - 1)]
            unknowns = [(name, p) for name, p in system.named_parameters() if p.requires_grad]
            return SystemResiduals(system, unknowns, estimates, nodes if shoot else None, train_times, train_observed,
                                   train_weight, spans, continuity, solver, tally.add, group)

        single = problem(None)
        shot = problem(window) if window is not None else None
        if automatic and shot is not None and _too_large(shot):
            shot = None  # too many shooting nodes per series for the normal equations: single shooting only
        if shot is None:
            stages = [single]
        else:
            stages = [single, shot, single] if automatic else [shot, single]
        noise = noise_level(train_observed)

        def advance(stage: int, cost: float) -> bool:
            """Past the windows, polish by single shooting; past a single shooting fit, turn to windows if it stalled."""
            if stage == 1 or not automatic:
                return True
            if not stalled((2.0 * cost) ** 0.5, noise):
                return False
            nodes.place(node_starts(system, estimates, train_times, train_observed, window, solver))
            return True

        for stage in stages:
            if _too_large(stage):
                raise ValueError(f"optimizer={LEAST_SQUARES!r} would fit {stage.global_columns} unknowns shared by "
                                 f"every series and {stage.local_columns} of each series; at most "
                                 f"{MAX_LEAST_SQUARES_UNKNOWNS} of either. Use a first-order optimizer such as "
                                 "'lbfgs' or 'adam'" + (", or fewer shooting windows" if window else ""))
        update = LeastSquaresUpdate(stages, ftol, xtol, gtol, advance)
        epochs = defaults["epochs"] * len(stages) if epochs is None else epochs
    else:
        deterministic = optimizer == "lbfgs" and (batch_size is None or batch_size >= series_count)
        update = GradientUpdate(make_optimizer(optimizer, trainable, lr), batch_loss, ftol=ftol if deterministic else 0.0,
                                group=group)
        epochs = defaults["epochs"] if epochs is None else epochs
    loop = Loop(
        modules=modules, update=update, series=series_count, validation_loss=validation_loss,
        entries=lambda run: {"solves": tally.take(),
                             **{name: value.cpu().numpy() for name, value in system.parameter_values().items()}},
        message=lambda logs: _progress_message(system, logs, ftol),
        epochs=epochs, batch_size=None if least_squares else batch_size, seed=seed, patience=patience,
        max_failures=max_failures, callbacks=[_with_parameters(callback, system) for callback in callbacks],
        progress=progress, device=device, group=group,
    )
    result = train(loop, checkpoint=checkpoint, resume=resume, fingerprint=fingerprint,
                   result=lambda run: _result(system, estimates, data, run, solver))
    if least_squares and not result.interrupted:
        _warn_if_stalled(single, noise, group)
    return result


def _too_large(problem: SystemResiduals) -> bool:
    """Normal equations too large to factor: the block of the shared unknowns, or one series' block."""
    return max(problem.global_columns, problem.local_columns) > MAX_LEAST_SQUARES_UNKNOWNS


def _warn_if_stalled(single: SystemResiduals, noise: float | None, group: Group) -> None:
    """Say so (on rank 0) when the fit ends with residuals well above the noise level of the data."""
    with torch.no_grad():
        cost, _ = single.evaluate(jacobian=False)
    rms = (2.0 * cost) ** 0.5
    if group.main and stalled(rms, noise):
        warnings.warn(f"fit: the residuals' root mean square {rms:.3g} is {rms / noise:.0f} times the noise level "
                      f"estimated from the data ({noise:.3g}): the fit may sit in a local minimum, or the model may "
                      "lack part of the physics; try other starting values, or multiple shooting (shooting=k)",
                      RuntimeWarning, stacklevel=3)


class _Tally:
    """Solves counted since the last epoch ended."""

    def __init__(self):
        self.count = 0

    def add(self) -> None:
        self.count += 1

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def _choose_optimizer(optimizer, system, loss, batch_size, series: int):
    """"auto": with the whole data set as one batch, Levenberg-Marquardt for physics (no learned
    parameter) and an mse loss, else L-BFGS; with mini-batches, Adam."""
    if optimizer != "auto":
        return optimizer
    if batch_size is not None and batch_size < series:
        return "adam"
    learned = any(p.requires_grad for name in type(system)._declared["learned"]
                  for p in getattr(system, name).parameters())
    return LEAST_SQUARES if not learned and loss == "mse" else "lbfgs"


def _with_parameters(callback: Callable, system) -> Callable:
    """A fit callback sees logs with "loss", "val_loss" and the physical "parameters"."""
    return lambda epoch, logs: callback(epoch, {"loss": logs["loss"], "val_loss": logs["val_loss"],
                                                "parameters": system.parameter_values()})


def _check_arguments(epochs, lr, least_squares, loss, batch_size, series, validation, patience, shooting, continuity,
                     max_failures, ftol, xtol, gtol) -> None:
    check_count("epochs", epochs, allow_none=True)
    check_count("batch_size", batch_size, allow_none=True)
    check_count("patience", patience, allow_none=True)
    check_count("max_failures", max_failures)
    if not (shooting is None or shooting == "auto" or (isinstance(shooting, int) and shooting >= 2)):
        raise ValueError(f"shooting must be an integer number of time intervals per window (>= 2), 'auto' or None, "
                         f"got {shooting!r}")
    if lr is not None:
        check_real("lr", lr, positive=True)
    if validation is not None:
        check_fraction("validation", validation)
    if patience is not None and validation is None:
        raise ValueError("patience (early stopping) needs a validation fraction")
    check_real("continuity", continuity, positive=False)
    for name, value in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)):
        check_fit_tolerance(name, value)
    if least_squares:
        if lr is not None:
            raise ValueError(f"lr does not apply to optimizer={LEAST_SQUARES!r} (the default for physics-only systems), "
                             "which sets its own steps; for a first-order fit name one, e.g. optimizer='adam'")
        if loss != "mse":
            raise ValueError(f"optimizer={LEAST_SQUARES!r} minimises squared residuals: it needs loss='mse', got {loss!r}")
        if batch_size is not None and batch_size < series:
            raise ValueError(f"optimizer={LEAST_SQUARES!r} takes the whole data set as one batch; batch_size={batch_size} "
                             f"is less than its {series} series")


def _time_weight(time_weight, times: Tensor) -> Tensor | None:
    if time_weight is None:
        return None
    value = time_weight(times) if callable(time_weight) else time_weight
    value = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
    if value.dtype.kind not in "iuf":
        raise TypeError(f"time_weight must be an array of weights or a callable of the times giving one, got {value!r}")
    value = torch.as_tensor(value.astype(float), dtype=times.dtype, device=times.device)
    if value.shape != times.shape or not bool(torch.isfinite(value).all()) or bool((value < 0).any()):
        raise ValueError(f"time_weight must give one finite, non-negative weight per time point ({len(times)})")
    if not bool((value > 0).any()):
        raise ValueError("time_weight gives every time point weight 0: nothing would be fitted")
    return value


def _initial_guess(system, times, observed, initial_state, dtype, device) -> dict[str, Tensor]:
    """system.initial_guess, overridden by `initial_state` where given; (series, *shape) per state."""
    series = next(iter(observed.values())).shape[0]
    given = dataset.as_mapping(initial_state)
    unknown = sorted(set(given) - set(type(system).states()))
    if unknown:
        raise ValueError(f"initial_state names {unknown}, which are not States of {type(system).__name__} "
                         f"({list(type(system).states())})")
    guess = {**system.initial_guess(times, observed), **given}
    result = {}
    for name, state in type(system).states().items():
        value = guess[name].detach().cpu().numpy() if isinstance(guess[name], Tensor) else np.asarray(guess[name])
        if value.dtype.kind not in "iuf":
            raise TypeError(f"the initial value of {name!r} must be real numbers, got {value.dtype}")
        value = torch.as_tensor(value.astype(float), dtype=dtype, device=device)
        try:
            result[name] = value.expand(series, *state.shape).clone()
        except RuntimeError:
            raise ValueError(f"the initial value of {name!r} has shape {tuple(value.shape)}; expected {state.shape} "
                             f"or ({series}, *{state.shape})") from None
    return result


def _progress_message(system, logs: dict, ftol: float | None) -> str:
    """Loss, validation loss, the distance to the ftol test and the small parameters."""
    parts = [f"loss {logs['loss']:.4g}"] + ([f"val {logs['val_loss']:.4g}"] if logs["val_loss"] is not None else [])
    if ftol is not None and "relative_reduction" in logs:
        parts.append(f"reduction {logs['relative_reduction']:.2g} (ftol {ftol:g})")
    for name, value in system.parameter_values().items():
        flat = value.flatten().tolist()
        if len(flat) <= 4:
            parts.append(f"{name}=" + (f"{flat[0]:.5g}" if len(flat) == 1 else "[" + ", ".join(f"{v:.5g}" for v in flat) + "]"))
    return "  ".join(parts)


def _fingerprint(system, data, weight: Tensor | None, settings: dict) -> Fingerprint:
    """The data (every variable), the time weights and the settings of a fit of `system`."""
    pieces = [item for name in sorted(data.data_vars) for item in (name.encode(), np.asarray(data[name].values))]
    weights = [] if weight is None else [b"time_weight", weight.detach().cpu().numpy()]
    return fingerprint(type(system).__name__, [*pieces, np.asarray(data["time"].values), *weights], settings, system)


def _result(system, estimates, data, run, solver) -> FitResult:
    with torch.no_grad():
        initial = dataset.state_dataset(system, estimates(), series=data["series"].values)
    units = {name: p.units for name, p in type(system).physical_parameters().items()}
    return FitResult(**TrainingResult.fields(run, units), parameters=system.parameter_values(), initial_state=initial,
                     _report=lambda **overrides: parameter_report(system, estimates, data, {**solver, **overrides}))
