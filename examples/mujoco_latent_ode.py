"""The MuJoCo hopper experiment of Rubanova, Chen & Duvenaud, "Latent ODEs for irregularly-sampled
time series" (NeurIPS 2019, Sec. 5.2, Table 3), on data regenerated here with the mujoco package.

A Latent ODE with an ODE-RNN encoder (15-d latent state) learns hopper trajectories and is scored
by test MSE on interpolation (a random window of 100 of the 200 time points, 10/20/30/50% of them
observed, all predicted: scored on all of them as in the paper, and on the unobserved ones only,
which is what interpolation asks) and extrapolation (the first 100 points observed at those fractions, the
last 100 predicted), next to two trivial predictors on the same draws (each feature's training
mean; the last observation carried forward) and to the published numbers.

    python examples/mujoco_latent_ode.py                     # fast default, a few minutes on a CPU
    python examples/mujoco_latent_ode.py --gradient aca adjoint mali   # time per epoch and MSE per method
    python examples/mujoco_latent_ode.py --full              # the paper's scale: 10,000 series (a GPU)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from physode.series import feature_mean, hold_last
from physode.datasets import MinMaxScale, data_directory, hopper, split
from physode.series import IrregularBatch, extrapolation_task, interpolation_task, mse
from physode.nn import KLAnnealing, LatentODE

FRACTIONS = (0.1, 0.2, 0.3, 0.5)
WINDOW = 100
# Rubanova et al. 2019, Table 3, MuJoCo, Latent ODE (ODE enc.), test MSE x 1e-2
PUBLISHED = {"interpolation": (0.360, 0.295, 0.300, 0.285), "extrapolation": (1.441, 1.400, 1.175, 1.258)}

# the paper's settings (--full) and a fast default that trains in about 8 minutes on a 2-core CPU
FAST = {"series": 1000, "epochs": {"interpolation": 120, "extrapolation": 80}, "batch": 50, "lr": 1e-2,
        "lr_decay": 0.99, "latent": 15, "encoder_hidden": 30, "encoder_units": (100,), "units": (100, 100),
        "kl_wait": 5, "obs_std": 1e-3}
FULL = {"series": 10000, "epochs": {"interpolation": 300, "extrapolation": 300}, "batch": 50, "lr": 1e-2,
        "lr_decay": 0.999 ** 160, "latent": 15, "encoder_hidden": 30, "encoder_units": (300, 300, 300),
        "units": (300, 300, 300), "kl_wait": 10, "obs_std": 1e-3}


def windows(ds: xr.Dataset, length: int, seed: int) -> xr.Dataset:
    """A random window of `length` consecutive time points per series, its time restarted at 0."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, ds.sizes["time"] - length + 1, size=ds.sizes["series"])
    index = xr.DataArray(starts[:, None] + np.arange(length)[None, :], dims=("series", "time"))
    cut = ds.drop_vars("time").isel(time=index)
    return cut.assign_coords(time=np.asarray(ds["time"].values[:length]))


def score(model: LatentODE, train: IrregularBatch, test: IrregularBatch, task: str, fraction: float, seed: int) -> dict:
    """Test MSE of the model and of the two trivial predictors on one draw of observed points, over
    {"all": every target point, the observed ones included (the paper's metric), "unobserved": only
    the points the predictors did not see}; for extrapolation the two are the same."""
    make = interpolation_task if task == "interpolation" else extrapolation_task
    chosen = make(test, fraction, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        predicted = torch.cat([model.predict(chosen.observed.select(torch.arange(i, min(i + 100, test.series))),
                                             chosen.target.times) for i in range(0, test.series, 100)])
    scores = {}
    for points, target in (("all", chosen.target), ("unobserved", chosen.unobserved)):
        model_prediction = predicted[:, torch.searchsorted(chosen.target.times, target.times)]
        mean = feature_mean(train).expand_as(target.values)
        scores[points] = {"latent ODE": mse(model_prediction, target).item(), "feature mean": mse(mean, target).item(),
                          "hold last": mse(hold_last(chosen.observed, target.times), target).item()}
    return scores


def train_model(config: dict, train: IrregularBatch, task: str, gradient: str, args, checkpoint: Path | None):
    method = "alf" if gradient == "mali" else "dopri5"
    torch.manual_seed(args.seed)
    model = LatentODE(train.features, config["latent"], encoder_hidden=config["encoder_hidden"],
                      encoder_units=config["encoder_units"], units=config["units"], obs_std=config["obs_std"], method=method,
                      rtol=1e-3, atol=1e-4, gradient=gradient, init=args.init, device=args.device)
    result = model.fit(train, task=task, fraction=FRACTIONS, epochs=config["epochs"][task], batch_size=config["batch"],
                       lr=config["lr"], optimizer="adamax", lr_decay=config["lr_decay"], min_lr=config["lr"] / 10,
                       samples=3, kl=KLAnnealing(config["kl_wait"], 0.99), checkpoint=checkpoint,
                       resume=checkpoint is not None and args.resume, seed=args.seed)
    return model, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the paper's scale: 10,000 series, 300 epochs, larger nets")
    parser.add_argument("--series", type=int, help="series to generate (80%% train, 20%% test)")
    parser.add_argument("--epochs", type=int, help="training epochs per model")
    parser.add_argument("--lr", type=float, help="initial learning rate (Adamax)")
    parser.add_argument("--lr-decay", type=float, help="learning-rate factor per epoch")
    parser.add_argument("--obs-std", type=float, help="the fixed observation noise of the likelihood")
    parser.add_argument("--gradient", nargs="+", default=["aca"], choices=["aca", "adjoint", "mali", "direct"],
                        help="gradient method(s); several give a comparison table (interpolation model)")
    parser.add_argument("--task", nargs="+", default=["interpolation", "extrapolation"],
                        choices=["interpolation", "extrapolation"])
    parser.add_argument("--checkpoints", type=Path, help="directory for resumable checkpoints (default with --full: "
                        "<data directory>/checkpoints)")
    parser.add_argument("--resume", action="store_true", help="continue interrupted fits from their checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (small nets run best on 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--init", choices=["torch", "normal"], default="normal",
                        help="Linear layers: PyTorch's initialisation, or N(0, 0.1^2) weights and zero biases "
                             "(the reference implementation's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = dict(FULL if args.full else FAST)
    given = {"series": args.series, "epochs": args.epochs and {"interpolation": args.epochs, "extrapolation": args.epochs},
             "lr": args.lr, "lr_decay": args.lr_decay, "obs_std": args.obs_std}
    config.update({k: v for k, v in given.items() if v is not None})
    checkpoints = args.checkpoints or (data_directory() / "checkpoints" if args.full else None)
    if checkpoints is not None:
        checkpoints.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    raw = hopper(config["series"])
    scaled = MinMaxScale.fit(raw).apply(raw)  # over the whole set, as in the paper's code
    train_ds, test_ds = split(scaled, 0.8)
    print(f"hopper: {raw.sizes['series']} series x {raw.sizes['time']} steps of 0.005 s, 14 features "
          f"(regenerated with mujoco {raw.attrs['mujoco_version']}, not the authors' file); "
          f"{train_ds.sizes['series']} train, {test_ds.sizes['series']} test")
    data = {"interpolation": [windows(d, WINDOW, args.seed + i) for i, d in enumerate((train_ds, test_ds))],
            "extrapolation": [train_ds, test_ds]}
    batches = {task: [IrregularBatch.from_dataset(d, ["qpos", "qvel"], device=args.device) for d in pair]
               for task, pair in data.items()}

    rows, timing = {}, []
    for task in args.task:
        train, test = batches[task]
        for gradient in args.gradient:
            checkpoint = None if checkpoints is None else checkpoints / f"hopper-{task}-{gradient}.h5"
            print(f"\ntraining the {task} model, gradient={gradient}")
            model, result = train_model(config, train, task, gradient, args, checkpoint)
            scores = [score(model, train, test, task, f, args.seed + 100) for f in FRACTIONS]
            seconds = float(np.median(result.history["seconds"].values))
            timing.append((task, gradient, seconds, result.epochs, scores))
            if gradient == args.gradient[0]:
                rows[task] = scores

    print("\nTest MSE x 1e-2 (lower is better); observed fraction of the time points per column")
    header = f"{'task, points scored':<34}{'predictor':<34}" + "".join(f"{int(f * 100):>8}%" for f in FRACTIONS)
    print(header + "\n" + "-" * len(header))
    for task, scores in rows.items():
        for points in ("all", "unobserved") if task == "interpolation" else ("all",):
            scored = {"all": "all (the paper)", "unobserved": "unobserved"}[points]
            label = task if task == "extrapolation" else f"{task}, {scored}"
            for name in ("latent ODE", "feature mean", "hold last"):
                predictor = f"{name} ({args.gradient[0]})" if name == "latent ODE" else name
                print(f"{label:<34}{predictor:<34}" + "".join(f"{100 * s[points][name]:>9.3f}" for s in scores))
            if points == "all":
                print(f"{label:<34}{'published Latent ODE (ODE enc.)':<34}"
                      + "".join(f"{v:>9.3f}" for v in PUBLISHED[task]))
            ratio = [min(s[points]["feature mean"], s[points]["hold last"]) / s[points]["latent ODE"] for s in scores]
            print(f"{label:<34}{'best trivial / latent ODE':<34}" + "".join(f"{r:>8.1f}x" for r in ratio))
    if len(args.gradient) > 1:
        print("\nGradient methods: median seconds per epoch and test MSE x 1e-2 at 10/20/30/50% observed")
        for task, gradient, seconds, epochs, scores in timing:
            print(f"{task:<14}{gradient:<9}{seconds:>8.2f} s/epoch ({epochs} epochs)  "
                  + "  ".join(f"{100 * s['all']['latent ODE']:.3f}" for s in scores))
    epochs = ", ".join(f"{task} {config['epochs'][task]}" for task in args.task)
    print(f"\nThe published numbers are the authors' (their data, 10,000 series, 300 epochs, one model per fraction); "
          f"here: {config['series']} regenerated series, one model per task trained on all four fractions, epochs: "
          f"{epochs}. Total {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
