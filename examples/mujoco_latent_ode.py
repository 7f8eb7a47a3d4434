"""The MuJoCo hopper experiment of Rubanova, Chen & Duvenaud, "Latent ODEs for irregularly-sampled
time series" (NeurIPS 2019, Sec. 5.2, Table 3), on data regenerated here with the mujoco package.

A Latent ODE with an ODE-RNN encoder (15-d latent state) learns hopper trajectories and is scored
by test MSE on interpolation (a random window of 100 of the 200 time points, 10/20/30/50% of them
observed, all predicted: scored on all of them as in the paper, and on the unobserved ones only,
which is what interpolation asks) and extrapolation (as the reference code does for hopper: the
first 66 of the 200 points observed at those fractions, the last 134 predicted), next to two
trivial predictors on the same draws (each feature's training mean; the last observation carried
forward) and to the published numbers. The features are scaled by their minimum and maximum over
all 10,000 series of the set, as the reference does, whatever number of series is trained on.

The test MSE is logged during training (the learning curve, every --curve-every epochs) and
plotted against epochs and training wall time, with the trivial predictors and the published
values as horizontal lines (--output, a PNG, and its data as netCDF next to it).

    python examples/mujoco_latent_ode.py                     # fast default: about 7 minutes on 2 cores
    python examples/mujoco_latent_ode.py --medium            # about an hour of CPU time
    python examples/mujoco_latent_ode.py --full              # the paper's scale: 10,000 series (a GPU)
    python examples/mujoco_latent_ode.py --full --resume     # continue an interrupted --full run
    python examples/mujoco_latent_ode.py --gradient aca adjoint mali   # time per epoch and MSE per method
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from physode.datasets import MinMaxScale, data_directory, hopper, split
from physode.series import IrregularBatch, Task, compare_with_baselines, extrapolation_task, interpolation_task
from physode.series.dataset import load, save
from physode.nn import KLAnnealing, LatentODE

FRACTIONS = (0.1, 0.2, 0.3, 0.5)
WINDOW = 100
EXTRAPOLATION_SPLIT = 1 / 3  # the reference's hopper split: 200 // 3 = 66 points observed, 134 predicted
SCALE_SERIES = 10000  # the min-max scale is fitted on the whole set, as in the reference code
# Rubanova et al. 2019, Table 3, MuJoCo, Latent ODE (ODE enc.), test MSE x 1e-2
PUBLISHED = {"interpolation": (0.360, 0.295, 0.300, 0.285), "extrapolation": (1.441, 1.400, 1.175, 1.258)}
PREDICTORS = ("model", "feature mean", "hold last")  # the keys of compare_with_baselines
# the features drawn in the reconstruction figure: (label, position among the 7 qpos then 7 qvel features)
DRAWN = (("rootz (height)", 1), ("rooty (pitch)", 2), ("knee angle", 5), ("rootx velocity", 7))

# The reference's settings (run_models.py and its README's hopper command): Adamax, lr 1e-2 decaying
# by 0.999 per iteration (here per epoch by 0.999^iterations) to at least lr / 10, batch 50, KL weight
# 0 for 10 epochs then 1 - 0.99^(epoch - 10), the logsumexp loss over 3 draws of z0, its GRU cell
# over a hidden mean and std, N(0, 0.1^2) initialisation, observation std 1e-3, the last epoch kept; z0
# at the first observed time ("first"; the reference code places it at the first target time, --start target).
REFERENCE = {"batch": 50, "lr": 1e-2, "latent": 15, "encoder_hidden": 30, "cell": "gaussian", "kl_wait": 10,
             "objective": "logsumexp", "keep": "last", "init": "normal", "obs_std": 1e-3, "start": "first"}
CONFIGS = {
    "fast": {**REFERENCE, "series": 1000, "epochs": {"interpolation": 240, "extrapolation": 280},
             "encoder_units": (100,), "units": (100, 100)},
    "medium": {**REFERENCE, "series": 3000, "epochs": {"interpolation": 150, "extrapolation": 150},
               "encoder_units": (100, 100), "units": (100, 100)},
    # --units 300 --gen-layers 3 --rec-layers 3: an input layer and 3 more of 300 units in both ODE nets
    "full": {**REFERENCE, "series": 10000, "epochs": {"interpolation": 300, "extrapolation": 300},
             "encoder_units": (300,) * 4, "units": (300,) * 4},
}


def windows(ds: xr.Dataset, length: int, seed: int) -> xr.Dataset:
    """A random window of `length` consecutive time points per series, its time restarted at 0."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, ds.sizes["time"] - length + 1, size=ds.sizes["series"])
    index = xr.DataArray(starts[:, None] + np.arange(length)[None, :], dims=("series", "time"))
    cut = ds.drop_vars("time").isel(time=index)
    return cut.assign_coords(time=np.asarray(ds["time"].values[:length]))


def draw(test: IrregularBatch, task: str, fraction: float, seed: int) -> Task:
    """One draw of observed points on the test series: interpolation, or extrapolation past the
    reference's hopper split."""
    generator = torch.Generator().manual_seed(seed)
    if task == "interpolation":
        return interpolation_task(test, fraction, generator=generator)
    split_time = float(test.times[math.floor(EXTRAPOLATION_SPLIT * len(test.times))])
    return extrapolation_task(test, fraction, split=split_time, generator=generator)


def predict(model: LatentODE, chosen: Task) -> Tensor:
    """The model's prediction at the task's target times, 100 series at a time."""
    series = chosen.observed.series
    with torch.no_grad():
        return torch.cat([model.predict(chosen.observed.select(torch.arange(i, min(i + 100, series))),
                                        chosen.target.times) for i in range(0, series, 100)])


def score(model: LatentODE, train: IrregularBatch, test: IrregularBatch, task: str, fraction: float, seed: int) -> dict:
    """Test MSE of the model and of the two trivial predictors on one draw of observed points, over
    {"all": every target point, the observed ones included (the paper's metric), "unobserved": only
    the points the predictors did not see}; for extrapolation the two are the same."""
    chosen = draw(test, task, fraction, seed)
    return compare_with_baselines(predict(model, chosen), chosen, train)


def reconstruction(model: LatentODE, test: IrregularBatch, task: str, seed: int) -> dict:
    """Test series 0 at 50 % observed: its observed points, every point, and the model's prediction."""
    chosen = draw(test.select(torch.arange(1)), task, 0.5, seed)
    return {"observed": chosen.observed, "truth": test.select(torch.arange(1)),
            "times": chosen.target.times, "predicted": predict(model, chosen)[0]}


class LearningCurve:
    """A fit callback: the test scores (`score` at every fraction) every `every` epochs and at
    `last`; kept in `path` (netCDF, when given) after each evaluation and read back from there
    when a fit resumes."""

    def __init__(self, model, train, test, task, every: int, last: int, seed: int, path: Path | None, resume: bool):
        self.model, self.train, self.test, self.task = model, train, test, task
        self.every, self.last, self.seed, self.path = every, last, seed, path
        self.epochs, self.scores = [], []
        if resume and path is not None and path.exists():
            saved = load(path)["mse"]
            self.epochs = saved["epoch"].values.tolist()
            self.scores = [[{points: dict(zip(PREDICTORS, saved.values[i, j, k].tolist()))
                             for k, points in enumerate(("all", "unobserved"))} for j in range(len(FRACTIONS))]
                           for i in range(len(self.epochs))]

    def __call__(self, epoch: int, logs: dict) -> bool:
        if epoch % self.every == 0 or epoch == self.last:
            while self.epochs and self.epochs[-1] >= epoch:  # evaluated before an interruption lost the epoch
                self.epochs.pop()
                self.scores.pop()
            self.epochs.append(epoch)
            self.scores.append([score(self.model, self.train, self.test, self.task, f, self.seed) for f in FRACTIONS])
            if self.path is not None:
                save(self.dataset(), self.path)
        return False

    def dataset(self, seconds: np.ndarray | None = None) -> xr.Dataset:
        """The curve; with the fit's seconds per epoch, also the training time up to each epoch."""
        values = [[[[s[points][name] for name in PREDICTORS] for points in ("all", "unobserved")] for s in row]
                  for row in self.scores]
        variables = {"mse": (("epoch", "fraction", "points", "predictor"), np.asarray(values, dtype=float).reshape(
            len(self.epochs), len(FRACTIONS), 2, len(PREDICTORS)), {"long_name": f"test MSE, {self.task}"})}
        if seconds is not None:
            elapsed = np.cumsum(seconds)[np.asarray(self.epochs, dtype=int) - 1]
            variables["seconds"] = ("epoch", elapsed, {"units": "s", "long_name": "training time up to the epoch"})
        return xr.Dataset(variables, coords={"epoch": np.asarray(self.epochs, dtype=int), "fraction": list(FRACTIONS),
                                             "points": ["all", "unobserved"], "predictor": list(PREDICTORS)},
                          attrs={"task": self.task})


def train_model(config: dict, train: IrregularBatch, test: IrregularBatch, task: str, gradient: str, args,
                checkpoint: Path | None) -> tuple[LatentODE, object, LearningCurve]:
    method = "alf" if gradient == "mali" else "dopri5"
    torch.manual_seed(args.seed)
    model = LatentODE(train.features, config["latent"], encoder_hidden=config["encoder_hidden"],
                      encoder_units=config["encoder_units"], encoder_cell=config["cell"], units=config["units"],
                      obs_std=config["obs_std"], method=method, rtol=1e-3, atol=1e-4, gradient=gradient,
                      init=config["init"], start=config["start"], device=args.device)
    epochs = config["epochs"][task]
    curve = LearningCurve(model, train, test, task, args.curve_every, epochs, args.seed + 100,
                          None if checkpoint is None else checkpoint.with_suffix(".curve.nc"), args.resume)
    iterations = math.ceil(train.series / config["batch"])
    result = model.fit(train, task=task, fraction=FRACTIONS, epochs=epochs, batch_size=config["batch"],
                       lr=config["lr"], optimizer="adamax", lr_decay=0.999 ** iterations, min_lr=config["lr"] / 10,
                       samples=3, kl=KLAnnealing(config["kl_wait"], 0.99), objective=config["objective"],
                       extrapolation_split=EXTRAPOLATION_SPLIT, keep=config["keep"], callbacks=[curve],
                       checkpoint=checkpoint, resume=checkpoint is not None and args.resume, seed=args.seed)
    return model, result, curve


def hopper_sets(config: dict) -> tuple[xr.Dataset, xr.Dataset, str]:
    """The train and test sets, the first config["series"] series of the set min-max scaled over all
    SCALE_SERIES of it and split 80/20 by series, and a line that describes them."""
    whole = hopper(max(SCALE_SERIES, config["series"]))
    scale = MinMaxScale.fit(whole)
    train_ds, test_ds = split(scale.apply(whole.isel(series=slice(0, config["series"]))), 0.8)
    return train_ds, test_ds, (
        f"hopper: {config['series']} series x {whole.sizes['time']} steps of 0.005 s, 14 features (regenerated with "
        f"mujoco {whole.attrs['mujoco_version']}, not the authors' file), scaled over {whole.sizes['series']} series; "
        f"{train_ds.sizes['series']} train, {test_ds.sizes['series']} test")


def hopper_batches(sets: tuple[xr.Dataset, xr.Dataset], task: str, args) -> list[IrregularBatch]:
    """[train, test] for `task` from the train and test sets: interpolation on windows of WINDOW
    points, extrapolation on whole series."""
    pair = [windows(d, WINDOW, args.seed + i) for i, d in enumerate(sets)] if task == "interpolation" else list(sets)
    return [IrregularBatch.from_dataset(d, ["qpos", "qvel"], device=args.device) for d in pair]


def run(config: dict, name: str, task: str, gradient: str, args, checkpoints: Path | None,
        sets: tuple[xr.Dataset, xr.Dataset]) -> dict:
    """Train and score one model on the train and test `sets` (in this process, or in one of main's
    worker processes): its last scores, seconds per epoch, learning curve and reconstructed test series."""
    torch.set_num_threads(args.threads)
    train, test = hopper_batches(sets, task, args)
    checkpoint = None if checkpoints is None else checkpoints / f"hopper-{name}-{task}-{gradient}.h5"
    print(f"training the {task} model, gradient={gradient}", flush=True)
    model, result, curve = train_model(config, train, test, task, gradient, args, checkpoint)
    seconds = result.history["seconds"].values
    return {"task": task, "gradient": gradient, "scores": curve.scores[-1], "epochs": result.epochs,
            "seconds": float(np.median(seconds)), "curve": curve.dataset(seconds),
            "drawn": reconstruction(model, test, task, args.seed + 100)}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--medium", action="store_true", help="3,000 series, 150 epochs, deeper encoder nets: about an hour of CPU time")
    scale.add_argument("--full", action="store_true", help="the paper's scale: 10,000 series, 300 epochs, 300-unit nets")
    parser.add_argument("--series", type=int, help="series to train and test on (80%% train, 20%% test)")
    parser.add_argument("--epochs", type=int, help="training epochs per model")
    parser.add_argument("--lr", type=float, help="initial learning rate (Adamax)")
    parser.add_argument("--obs-std", type=float, help="the fixed observation noise of the likelihood")
    parser.add_argument("--cell", choices=["gaussian", "gru"], help="the ODE-RNN's update: the reference's GRU over a "
                        "hidden mean and std, or torch's GRUCell")
    parser.add_argument("--objective", choices=["logsumexp", "elbo"], help="the reference's loss or the mean ELBO")
    parser.add_argument("--keep", choices=["last", "best"], help="the last epoch, or the lowest training loss's")
    parser.add_argument("--init", choices=["normal", "torch"], help="Linear layers: N(0, 0.1^2) weights and zero "
                        "biases (the reference's), or PyTorch's initialisation")
    parser.add_argument("--start", choices=["first", "target"], help="z0 at the first observed time, or at the first "
                        "target time as the reference code does (differs for extrapolation only)")
    parser.add_argument("--gradient", nargs="+", default=["aca"], choices=["aca", "adjoint", "mali", "direct"],
                        help="gradient method(s); several give a comparison table (interpolation model)")
    parser.add_argument("--task", nargs="+", default=["interpolation", "extrapolation"],
                        choices=["interpolation", "extrapolation"])
    parser.add_argument("--curve-every", type=int, default=5, help="epochs between test evaluations of the curve")
    parser.add_argument("--output", type=Path, default=Path("mujoco_latent_ode.png"),
                        help="the learning-curve plot (its data: the same name with .nc)")
    parser.add_argument("--checkpoints", type=Path, help="directory for resumable checkpoints (default with --full: "
                        "<data directory>/checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue interrupted fits from their checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (small nets run best on 1)")
    parser.add_argument("--jobs", type=int, help="models trained at once, each in its own process (default: 2 for "
                        "one gradient method, 1 when comparing their seconds per epoch)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.curve_every < 1:
        parser.error(f"--curve-every must be a positive integer, got {args.curve_every}")
    return args


def main() -> None:
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    name = "full" if args.full else "medium" if args.medium else "fast"
    config = dict(CONFIGS[name])
    given = {"series": args.series, "epochs": args.epochs and {"interpolation": args.epochs, "extrapolation": args.epochs},
             "lr": args.lr, "obs_std": args.obs_std, "cell": args.cell, "objective": args.objective,
             "keep": args.keep, "init": args.init, "start": args.start}
    config.update({k: v for k, v in given.items() if v is not None})
    checkpoints = args.checkpoints or (data_directory() / "checkpoints" if args.full else None)
    if checkpoints is not None:
        checkpoints.mkdir(parents=True, exist_ok=True)
    print("settings: " + ", ".join(f"{k} {v}" for k, v in config.items()))

    started = time.perf_counter()
    *sets, description = hopper_sets(config)
    print(description)
    models = [(task, gradient) for task in args.task for gradient in args.gradient]
    jobs = min(args.jobs or (2 if len(args.gradient) == 1 else 1), len(models))
    if jobs > 1:
        print(f"{len(models)} models, {jobs} at a time, each in its own process")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(run, *zip(*[(config, name, t, g, args, checkpoints, sets) for t, g in models])))
    else:
        results = [run(config, name, task, gradient, args, checkpoints, sets) for task, gradient in models]
    first = [r for r in results if r["gradient"] == args.gradient[0]]
    rows, curves, drawn = ({r["task"]: r[key] for r in first} for key in ("scores", "curve", "drawn"))
    print_table(rows, args.gradient[0])
    if len(args.gradient) > 1:
        print("\nGradient methods: median seconds per epoch and test MSE x 1e-2 at 10/20/30/50% observed")
        for r in results:
            print(f"{r['task']:<14}{r['gradient']:<9}{r['seconds']:>8.2f} s/epoch ({r['epochs']} epochs)  "
                  + "  ".join(f"{100 * s['all']['model']:.3f}" for s in r["scores"]))
    save(xr.concat([c.expand_dims(task=[t]) for t, c in curves.items()], dim="task", join="outer"),
         args.output.with_suffix(".nc"))
    plot(curves, args.output)
    figure = args.output.with_name(args.output.stem + "_reconstruction.png")
    plot_reconstruction(drawn, figure)
    epochs = ", ".join(f"{task} {config['epochs'][task]}" for task in args.task)
    print(f"\nThe published numbers are the authors' (their data, 10,000 series, 300 epochs, one model per fraction); "
          f"here: {config['series']} regenerated series, one model per task trained on all four fractions, epochs: "
          f"{epochs}. Learning curves: {args.output} (data: {args.output.with_suffix('.nc')}); a reconstructed test "
          f"series: {figure}. "
          f"Total {time.perf_counter() - started:.0f} s.")


def print_table(rows: dict, gradient: str) -> None:
    print("\nTest MSE x 1e-2 (lower is better); observed fraction of the time points per column")
    header = f"{'task, points scored':<34}{'predictor':<34}" + "".join(f"{int(f * 100):>8}%" for f in FRACTIONS)
    print(header + "\n" + "-" * len(header))
    for task, scores in rows.items():
        for points in ("all", "unobserved") if task == "interpolation" else ("all",):
            scored = {"all": "all (the paper)", "unobserved": "unobserved"}[points]
            label = task if task == "extrapolation" else f"{task}, {scored}"
            for name in PREDICTORS:
                predictor = f"latent ODE ({gradient})" if name == "model" else name
                print(f"{label:<34}{predictor:<34}" + "".join(f"{100 * s[points][name]:>9.3f}" for s in scores))
            if points == "all":
                print(f"{label:<34}{'published Latent ODE (ODE enc.)':<34}"
                      + "".join(f"{v:>9.3f}" for v in PUBLISHED[task]))
            ratio = [min(s[points]["feature mean"], s[points]["hold last"]) / s[points]["model"] for s in scores]
            print(f"{label:<34}{'best trivial / latent ODE':<34}" + "".join(f"{r:>8.1f}x" for r in ratio))


def plot(curves: dict[str, xr.Dataset], path: Path) -> None:
    """Test MSE (the paper's metric) against epochs and wall time, one row per task: the model per
    fraction (solid), the better trivial predictor (dashed) and the published value (dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(curves), 2, figsize=(11, 3.8 * len(curves)), squeeze=False)
    for row, (task, curve) in enumerate(curves.items()):
        mse_all = 100 * curve["mse"].sel(points="all")
        for column, (x, label) in enumerate(((curve["epoch"], "epoch"), (curve["seconds"], "training time (s)"))):
            ax = axes[row, column]
            for i, fraction in enumerate(FRACTIONS):
                color = f"C{i}"
                model = mse_all.sel(fraction=fraction, predictor="model")
                trivial = float(mse_all.sel(fraction=fraction).sel(predictor=["feature mean", "hold last"])
                                .isel(epoch=-1).min())
                ax.plot(x, model, color=color, label=f"latent ODE, {fraction:.0%} observed")
                ax.axhline(trivial, color=color, ls="--", lw=0.8)
                ax.axhline(PUBLISHED[task][i], color=color, ls=":", lw=0.8)
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("test MSE x 1e-2")
            ax.set_title(f"{task}: dashed = best trivial predictor, dotted = published", fontsize=9)
        axes[row, 0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)



def plot_reconstruction(drawn: dict[str, dict], path: Path) -> None:
    """One test series per task (rows) and four of its features (columns): every point (grey), the
    observed ones (dots) and the model's prediction at the target times (line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(drawn), len(DRAWN), figsize=(3.2 * len(DRAWN), 2.8 * len(drawn)), squeeze=False)
    for row, (task, d) in enumerate(drawn.items()):
        truth, observed = d["truth"], d["observed"]
        for column, (label, feature) in enumerate(DRAWN):
            ax = axes[row, column]
            ax.plot(truth.times, truth.values[0, :, feature], color="0.6", lw=1, label="truth")
            seen = observed.mask[0, :, feature] > 0
            ax.plot(observed.times[seen], observed.values[0, seen, feature], "k.", ms=3, label="observed")
            ax.plot(d["times"], d["predicted"][:, feature], color="C3", lw=1.2, label="latent ODE")
            ax.set_title(f"{task}: {label}", fontsize=9)
            ax.set_xlabel("time (s)")
        axes[row, 0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
