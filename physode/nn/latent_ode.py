"""The Latent ODE (Rubanova, Chen & Duvenaud, "Latent ODEs for irregularly-sampled time series",
NeurIPS 2019): a variational autoencoder whose decoder is an ODE in a latent space."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn

from ..checks import check_count, check_fraction, check_real, check_time_array
from ..grad import GradientMethod
from ..solve import SolverError
from ..series.irregular import IrregularBatch, Task, extrapolation_task, interpolation_task, series_variables, subsample
from ..series.losses import gaussian_log_likelihood, mse
from ..series.timegrid import integrate_series
from ..training import (
    GradientUpdate, Group, Loop, Partial, TrainingResult, check_optimizer, check_run, fingerprint, make_optimizer,
    process_group, train,
)
from .dynamics import LatentDynamics
from .mlp import MLP
from .odernn import ODERNN

TASKS = ("interpolation", "extrapolation")
POINTS = ("all", "unobserved")
INITIALISATIONS = ("torch", "normal")
OBJECTIVES = ("elbo", "logsumexp")
KEEP = ("best", "last")
STARTS = ("first", "target")


@dataclass(frozen=True)
class KLAnnealing:
    """The weight of the KL term at epoch e (from 0): 0 while e < `wait`, then 1 - rate^(e - wait),
    the schedule of Rubanova et al.'s code (wait 10, rate 0.99). KLAnnealing(0, 0.0) is no annealing."""

    wait: int = 10
    rate: float = 0.99

    def __post_init__(self):
        if not (isinstance(self.wait, int) and self.wait >= 0 and 0 <= self.rate < 1):
            raise ValueError(f"KLAnnealing needs wait >= 0 (an integer) and 0 <= rate < 1, got {self.wait!r}, {self.rate!r}")

    def weight(self, epoch: int) -> float:
        return 0.0 if epoch < self.wait else 1.0 - self.rate ** (epoch - self.wait)


class LatentODE(nn.Module):
    """q(z0 | x) = N(mu, sigma^2), with (mu, sigma) from an ODE-RNN run backwards in time over the
    observations; z(t) solves dz/dt = f_theta(z) (`dynamics`, a LatentDynamics System) from z0;
    x(t) ~ N(decoder(z(t)), obs_std^2) with a fixed observation noise.

    `latent`: dims of z (15 in the paper's MuJoCo experiment); `encoder_hidden`, `encoder_units`,
    `encoder_cell`: the ODE-RNN's hidden size, the widths of its ODE's MLP and its update (see
    ODERNN: "gru", or "gaussian", Rubanova et al.'s GRU over a hidden mean and std, whose [mean,
    std] the posterior reads with |.| for its std, as their code does; "gru" maps the std through
    softplus); `units`: the widths of f_theta's MLP. The latent ODE is solved by `method` with `rtol`, `atol` and differentiated by
    `gradient` ("aca", "adjoint", "direct", or "mali" with method="alf"); `options` go to
    physode.odeint. `init`: "torch" keeps PyTorch's initialisation of every Linear layer; "normal"
    draws each Linear's weights from N(0, 0.1^2) and zeroes its biases, as Rubanova et al.'s code
    does (utils.init_network_weights); an nn.GRUCell ("gru") keeps PyTorch's. `start`: "first"
    places z0 at the earliest observed or target time, the encoder's state evolved on to it;
    "target" places it at the first target time, read from the encoder's state at the first
    observation without evolving it, as Rubanova et al.'s code does (the same time for
    interpolation; for extrapolation, z0 stands for the state where the prediction starts).
    """

    def __init__(self, features: int, latent: int = 15, *, encoder_hidden: int = 30, encoder_units: Sequence[int] = (100,),
                 encoder_cell: str = "gru", units: Sequence[int] = (100, 100), obs_std: float = 0.01, method: str = "dopri5", rtol: float = 1e-3,
                 atol: float = 1e-4, gradient: str | GradientMethod = "aca", options: dict | None = None,
                 init: str = "torch", start: str = "first", dtype: torch.dtype | None = None, device=None):
        super().__init__()
        for name, value, choices in (("init", init, INITIALISATIONS), ("start", start, STARTS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        check_count("features", features)
        check_count("latent", latent)
        check_real("obs_std", obs_std, positive=True)
        dtype = dtype or torch.get_default_dtype()
        self.features, self.latent, self.obs_std = features, latent, float(obs_std)
        self.encoder = ODERNN(features, encoder_hidden, units=encoder_units, cell=encoder_cell, dtype=dtype, device=device)
        self.to_posterior = MLP(self.encoder.state_size, 2 * latent, (100,), final_scale=1.0).to(dtype=dtype, device=device)
        self.positive = torch.abs if encoder_cell == "gaussian" else nn.functional.softplus
        self.dynamics = LatentDynamics.of(latent, tuple(units), dtype=dtype, device=device)
        self.decoder = nn.Linear(latent, features).to(dtype=dtype, device=device)
        self.start = start
        self.solver = {"method": method, "rtol": rtol, "atol": atol, "gradient": gradient, "options": options}
        if init == "normal":
            with torch.no_grad():
                for layer in self.modules():
                    if isinstance(layer, nn.Linear):
                        layer.weight.normal_(0.0, 0.1)
                        layer.bias.zero_()

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.decoder.weight.device

    def posterior(self, observed: IrregularBatch, times: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The time t0 of z0 for predicting at `times` (see `start`), and the mean and standard
        deviation (series, latent) of q(z(t0) | observations)."""
        if self.start == "first":
            t0 = torch.minimum(observed.times[0], times[0])
            h = self.encoder(observed, backward=True, until=t0)
        else:
            t0, h = times[0], self.encoder(observed, backward=True)
        mean, spread = self.to_posterior(h).chunk(2, dim=-1)
        return t0, mean, self.positive(spread) + 1e-6

    def decode(self, z0: Tensor, t0: Tensor, times: Tensor, needed: Tensor | None = None) -> Tensor:
        """The predicted observations (..., series, T, features) at `times` from z(t0) = z0 (..., series,
        latent); with `needed` (series, T), only where it is set (zeros elsewhere), each series
        integrated over its own span (physode.timegrid.integrate_series)."""
        shape = z0.shape[:-1]
        series = int(np.prod(shape))
        needed = torch.ones(series, len(times), dtype=torch.bool, device=times.device) if needed is None else \
            needed.expand(*shape[:-1], *needed.shape).reshape(series, len(times))
        z = integrate_series(self.dynamics, (z0.reshape(series, self.latent),), times, needed,
                             start=t0.expand(series), **self.solver)[0]
        return self.decoder(z).reshape(*shape, len(times), self.features)

    def negative_elbo(self, task: Task, *, samples: int = 3, kl_weight: float = 1.0, objective: str = "elbo",
                      generator: torch.Generator | None = None) -> Tensor:
        """The loss of `samples` reparameterised draws z0_k ~ q(z0 | x) (Kingma & Welling 2014), with
        L_k = mean over series of log p(x | z0_k) - kl_weight KL(q(z0 | x) || N(0, I)):
        "elbo" -mean_k L_k, the negative ELBO; "logsumexp" -logsumexp_k L_k, the loss of Rubanova
        et al.'s code (compute_all_losses), close to the best of the draws. As in their code, the
        log-likelihood is averaged over each series' observed entries (per feature, then over
        features) and the KL over the latent dims."""
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        partial = self._bounds(task, self._noise(samples, task.observed.series, generator), kl_weight, objective)
        return partial.combine(partial.sums)

    def _noise(self, samples: int, series: int, generator: torch.Generator | None) -> Tensor:
        """The standard normal draws of the reparameterisation, (samples, series, latent)."""
        return torch.randn((samples, series, self.latent), generator=generator, dtype=self.dtype).to(self.device)

    def _bounds(self, task: Task, noise: Tensor, kl_weight: float, objective: str) -> Partial:
        """negative_elbo as a Partial: the sums over the task's series of each draw's bound, and the
        number of series."""
        t0, mean, std = self.posterior(task.observed, task.target.times)
        prediction = self.decode(mean + std * noise, t0, task.target.times, task.target.observed)
        likelihood = gaussian_log_likelihood(prediction, task.target, self.obs_std)
        kl = (0.5 * (std.square() + mean.square() - 1) - std.log()).mean(dim=-1)
        bounds = (likelihood - kl_weight * kl).sum(dim=-1)
        return Partial(torch.cat([bounds, bounds.new_tensor([task.observed.series])]), COMBINE[objective])

    def predict(self, observed: IrregularBatch, times: Tensor) -> Tensor:
        """The prediction (series, T, features) at `times` from the posterior mean of z0."""
        times = times.to(dtype=self.dtype, device=self.device)
        t0, mean, _ = self.posterior(observed, times)
        return self.decode(mean, t0, times)

    def task(self, batch: IrregularBatch, task: str, fraction: float, *, split: float | None = None,
             generator: torch.Generator | None = None) -> Task:
        """The interpolation or extrapolation task on `batch`, observing `fraction` of the points."""
        if task == "interpolation":
            return interpolation_task(batch, fraction, generator=generator)
        return extrapolation_task(batch, fraction, split=split, generator=generator)

    def evaluate(self, data: xr.Dataset | IrregularBatch, *, task: str = "interpolation", fraction: float = 0.5,
                 seed: int = 0, batch_size: int | None = None, points: str = "all",
                 extrapolation_split: float = 0.5) -> float:
        """Mean squared error of `predict` on the task's targets, averaged per series and feature;
        the observed points are drawn once with `seed`. `points`: "all" the target points (the
        observed ones included, Rubanova et al.'s metric) or "unobserved" (Task.unobserved: only
        the points the model did not see, what interpolation asks). `extrapolation_split`: as in fit."""
        _check_task(task, fraction)
        check_fraction("extrapolation_split", extrapolation_split, closed=False)
        if points not in POINTS:
            raise ValueError(f"points must be one of {POINTS}, got {points!r}")
        check_count("batch_size", batch_size, allow_none=True)
        return self._evaluate(self._batch(data), task, fraction, seed, batch_size, points, extrapolation_split, Group())

    def _evaluate(self, full: IrregularBatch, task: str, fraction: float, seed: int, batch_size: int | None,
                  points: str, extrapolation_split: float, group: Group) -> float:
        """`evaluate`, each rank predicting its share of every batch; the ranks add their sums."""
        split = _split(full, extrapolation_split) if task == "extrapolation" else None
        generator = torch.Generator().manual_seed(seed)
        size = batch_size or full.series
        total, error = torch.zeros(1, dtype=torch.float64, device=self.device), None
        with torch.no_grad():
            for first in range(0, full.series, size):
                index = torch.arange(first, min(first + size, full.series), device=self.device)
                drawn = self.task(full.select(index), task, fraction, split=split, generator=generator)
                share = group.positions(len(index), self.device)
                if len(share) and error is None:
                    chosen = Task(drawn.observed.select(share), drawn.target.select(share))
                    target = chosen.target if points == "all" else chosen.unobserved
                    try:
                        total += float(mse(self.predict(chosen.observed, target.times), target)) * len(share)
                    except SolverError as failure:
                        error = failure
        group.agree(error, self.device)
        return float(group.sum(total)) / full.series

    def fit(self, data: xr.Dataset | IrregularBatch, *, task: str | Sequence[str] = "interpolation",
            fraction: float | Sequence[float] = 0.5,
            resample: bool = True, epochs: int = 100, batch_size: int | None = 50, lr: float = 1e-2,
            optimizer: str | Callable = "adamax", lr_decay: float = 1.0, min_lr: float = 0.0, samples: int = 3,
            kl: KLAnnealing = KLAnnealing(), objective: str = "elbo", extrapolation_split: float = 0.5,
            keep: str = "best", validation: xr.Dataset | IrregularBatch | None = None,
            patience: int | None = None, checkpoint=None, resume: bool | str = False, progress: bool | None = None,
            callbacks: Sequence[Callable] = (), seed: int = 0, max_failures: int = 5,
            distributed: bool | None = None) -> TrainingResult:
        """Maximise the ELBO of the series in `data` (a Dataset (series, time, ...) with NaN = not
        observed, or an IrregularBatch) on the interpolation or extrapolation `task`, observing
        `fraction` of each series' points: redrawn for every batch (`resample`) or drawn once.
        For a sequence of tasks or of fractions (these need `resample`), each batch draws one.

        `samples` draws of z0 per series; the KL weight follows `kl`; the loss is the `objective`
        of negative_elbo; the learning rate is multiplied by `lr_decay` after every epoch (not
        below `min_lr`). Extrapolation observes the data's time points before the one at index
        floor(`extrapolation_split` * T) and predicts the rest (Rubanova et al.: 1/2, and 1/3
        for hopper). `validation` data gives the validation loss (the MSE of `evaluate`, averaged
        over the tasks and fractions), which picks the best epoch and, with `patience`, stops
        early; `keep`: "best" ends at the best epoch (by validation loss, else training loss),
        "last" at the last epoch. `checkpoint`, `resume`, `callbacks`, `seed`, `max_failures`,
        `distributed` (data-parallel on torch.distributed's ranks): as in physode.fit; the observed
        points and z0's draws of a batch are drawn as one process would, and each rank computes its
        share of the batch's series. Returns a TrainingResult whose history also holds the KL weight.
        """
        tasks = tuple(task) if isinstance(task, (tuple, list)) else (task,)
        fractions = tuple(fraction) if isinstance(fraction, (tuple, list)) else (fraction,)
        for name, values, given in (("task", tasks, task), ("fraction", fractions, fraction)):
            if not values or (not resample and len(values) > 1):
                raise ValueError(f"{name} must be one value, or a non-empty sequence of them with resample=True, "
                                 f"got {given!r}")
        for name in tasks:
            for value in fractions:
                _check_task(name, value)
        for name, value in (("epochs", epochs), ("samples", samples), ("max_failures", max_failures)):
            check_count(name, value)
        check_count("batch_size", batch_size, allow_none=True)
        check_count("patience", patience, allow_none=True)
        check_real("lr", lr, positive=True)
        check_fraction("lr_decay", lr_decay, closed=True)
        if not isinstance(kl, KLAnnealing):
            raise TypeError(f"kl must be a KLAnnealing, got {type(kl).__name__}")
        if patience is not None and validation is None:
            raise ValueError("patience (early stopping) needs validation data")
        check_real("min_lr", min_lr, positive=False)
        check_fraction("extrapolation_split", extrapolation_split, closed=False)
        for name, value, choices in (("objective", objective, OBJECTIVES), ("keep", keep, KEEP)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        check_optimizer(optimizer)
        check_run(seed, progress, callbacks, resume)
        full = self._batch(data)
        group = process_group(distributed, self.device)
        held_out = None if validation is None else self._batch(validation)
        split = _split(full, extrapolation_split)
        fixed = None if resample else subsample(full, fractions[0], generator=torch.Generator().manual_seed(seed))
        trainable = [p for p in self.parameters() if p.requires_grad]
        opt = make_optimizer(optimizer, trainable, lr)

        def batch_loss(index: Tensor, share: Tensor, run) -> Partial:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + run.updates)
            batch = full.select(index)
            if fixed is None:
                drawn = tasks[int(torch.randint(len(tasks), (), generator=generator))]
                observed = fractions[int(torch.randint(len(fractions), (), generator=generator))]
                chosen = self.task(batch, drawn, observed, split=split, generator=generator)
            else:
                chosen = _fixed_task(fixed.select(index), batch, tasks[0], split)
            noise = self._noise(samples, len(index), generator)
            if not len(share):  # a last batch with fewer series than ranks
                return Partial(noise.new_zeros(samples + 1), COMBINE[objective])
            mine = Task(chosen.observed.select(share), chosen.target.select(share))
            return self._bounds(mine, noise[:, share], kl.weight(run.epoch), objective)

        def validation_loss(run) -> float | None:
            if held_out is None:
                return None
            scores = [self._evaluate(held_out, t, f, seed, None, "all", extrapolation_split, group)
                      for t in tasks for f in fractions]
            return sum(scores) / len(scores)

        settings = {"task": task, "fraction": fraction, "resample": resample, "batch_size": batch_size, "lr": lr,
                    "optimizer": optimizer, "lr_decay": lr_decay, "min_lr": min_lr, "samples": samples,
                    "kl": asdict(kl), "objective": objective,
                    "extrapolation_split": extrapolation_split, "keep": keep, "seed": seed, "solver": self.solver, "start": self.start, "obs_std": self.obs_std}
        loop = Loop(
            modules=[self], update=GradientUpdate(opt, batch_loss, lr_decay, min_lr, group=group), series=full.series,
            validation_loss=validation_loss, entries=lambda run: {"kl_weight": kl.weight(run.epoch - 1)},
            message=_message, epochs=epochs, batch_size=batch_size, seed=seed, patience=patience,
            max_failures=max_failures, callbacks=callbacks, progress=progress, device=self.device, keep=keep,
            group=group,
        )
        data_pieces = [t.detach().cpu().double().numpy() for batch in (full, held_out) if batch is not None
                       for t in (batch.times, batch.values, batch.mask)]
        return train(loop, checkpoint=checkpoint, resume=resume, fingerprint=fingerprint("LatentODE", data_pieces, settings, self),
                     result=lambda run: TrainingResult(**TrainingResult.fields(run)))

    def extrapolate(self, observations: xr.Dataset, t) -> xr.Dataset:
        """Predict every series of `observations` (series, time, ...; NaN = not observed) at the
        times t from all its observations; a Dataset with the same variables, at the times t."""
        batch = self._batch(observations)
        times = torch.as_tensor(check_time_array("t", t, increasing=True), dtype=self.dtype, device=self.device)
        with torch.no_grad():
            predicted = self.predict(batch, times).cpu().numpy()
        variables, offset = {}, 0
        for name in series_variables(observations):
            variable = observations[name]
            size = int(np.prod(variable.shape[2:], dtype=int))
            values = predicted[:, :, offset:offset + size].reshape(predicted.shape[0], len(times), *variable.shape[2:])
            variables[name] = (variable.dims, values, variable.attrs)
            offset += size
        coords = {k: v for k, v in observations.coords.items() if "time" not in v.dims}
        return xr.Dataset(variables, coords={**coords, "time": np.asarray(t, dtype=float)})

    def _batch(self, data) -> IrregularBatch:
        if isinstance(data, IrregularBatch):
            batch = data.to(dtype=self.dtype, device=self.device)
        elif isinstance(data, xr.Dataset):
            batch = IrregularBatch.from_dataset(data, series_variables(data), dtype=self.dtype, device=self.device)
        else:
            raise TypeError(f"data must be an xarray.Dataset or an IrregularBatch, got {type(data).__name__}")
        if batch.features != self.features:
            raise ValueError(f"the data has {batch.features} features; this LatentODE was built for {self.features}")
        if batch.series == 0 or len(batch.times) < 2:
            raise ValueError(f"data must hold at least one series observed at two or more times, got {batch.series} "
                             f"series and {len(batch.times)} times")
        if not bool(batch.observed.any(dim=1).all()):
            raise ValueError("every series needs at least one observation")
        return batch


def _negative_elbo(sums: Tensor) -> Tensor:
    """-mean_k L_k from the sums over series of the draws' bounds, followed by the number of series."""
    return -(sums[:-1] / sums[-1]).mean()


def _negative_logsumexp(sums: Tensor) -> Tensor:
    """-logsumexp_k L_k, as in Rubanova et al.'s compute_all_losses."""
    return -torch.logsumexp(sums[:-1] / sums[-1], dim=0)


COMBINE = {"elbo": _negative_elbo, "logsumexp": _negative_logsumexp}


def _fixed_task(observed: IrregularBatch, batch: IrregularBatch, task: str, split: float | None) -> Task:
    """The task whose observed points were drawn once for the whole data."""
    if task == "interpolation":
        return Task(observed, batch)
    return Task(observed.between(-math.inf, split), batch.between(split, math.inf))


def _split(full: IrregularBatch, share: float) -> float:
    """The first time extrapolation predicts: the one at index floor(share * T) (at least 1)."""
    return float(full.times[max(1, math.floor(share * len(full.times)))])


def _check_task(task: str, fraction: float) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    check_fraction("fraction", fraction, closed=True)


def _message(logs: dict) -> str:
    parts = [f"loss {logs['loss']:.4g}"]
    if logs["val_loss"] is not None:
        parts.append(f"val mse {logs['val_loss']:.4g}")
    parts.append(f"kl weight {logs['kl_weight']:.3f}")
    return "  ".join(parts)
