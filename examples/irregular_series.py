"""The periodic toy of Rubanova, Chen & Duvenaud, "Latent ODEs for irregularly-sampled time series"
(NeurIPS 2019): their generator (1,000 series, 100 points on [0, 5], noise 0.01) and their settings
(run_models.py with -n 1000 -s 50 -l 10 --latent-ode --noise-weight 0.01), one Latent ODE per task
as in their code:

- interpolation: 50 of each series' 100 points observed, all 100 predicted;
- extrapolation: the first 50 points observed, the last 50 predicted.

Both models are scored by test MSE, on all target points and on the unobserved ones, next to two
trivial predictors (each feature's training mean; the last observation carried forward), and then
run on from their task's first target time (0 for interpolation, 2.5 for extrapolation) to
t = --horizon, beyond the data: the peak-to-peak amplitude of the prediction over each quarter of
[0, horizon], divided by that of the clean signal (1 = a sustained oscillation, < 1 a damped one),
averaged over the test series, and the MSE of the prediction against the clean signal over each
quarter (which shows a drift of phase or offset that the amplitude does not). The plot shows a
few test series: the points, the observed ones, the clean signal and the prediction. z0 sits at
the first target time, as in the reference's code (--start first: at the first observed time; the
same for interpolation, whose targets start at 0).

    python examples/irregular_series.py               # 100 epochs of interpolation, 250 of extrapolation
    python examples/irregular_series.py --reference   # the reference's 500 epochs per task
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from physode.datasets import periodic, split
from physode.nn import KLAnnealing, LatentODE
from physode.series import IrregularBatch, compare_with_baselines, extrapolation_task, interpolation_task

# run_models.py: -s 50 observes 50 of the 100 points for interpolation, and all 50 of the first half
# (utils.split_data_extrap) for extrapolation
FRACTION = {"interpolation": 0.5, "extrapolation": 1.0}
PREDICTORS = {"model": "latent ODE", "feature mean": "feature mean", "hold last": "hold last"}
BATCH = 50
# epochs per task by default: extrapolation leaves its plateau (a flat, damped prediction) later
EPOCHS = {"interpolation": 100, "extrapolation": 250}


def train_model(train: IrregularBatch, task: str, epochs: int, seed: int, device, start: str) -> LatentODE:
    """The reference's Latent ODE (-l 10, --rec-dims 20, -u 100, --gen-layers 1, --rec-layers 1,
    -g 100, obs std 0.01, N(0, 0.1^2) initialisation) trained as its code does (Adamax, lr 1e-2
    times 0.999 per iteration down to 1e-3, batches of 50, 3 draws of z0, the logsumexp loss, KL
    weight 0 for 10 epochs then 1 - 0.99^(epoch - 10), the last epoch kept)."""
    torch.manual_seed(seed)
    model = LatentODE(1, 10, encoder_hidden=20, encoder_units=(100, 100), encoder_cell="gaussian", units=(100, 100),
                      obs_std=0.01, init="normal", start=start, device=device)
    model.fit(train, task=task, fraction=FRACTION[task], epochs=epochs, batch_size=BATCH, optimizer="adamax", lr=1e-2,
              lr_decay=0.999 ** math.ceil(train.series / BATCH), min_lr=1e-3, samples=3, kl=KLAnnealing(10, 0.99),
              objective="logsumexp", keep="last", extrapolation_split=0.5, seed=seed)
    return model


def scores(model: LatentODE, train: IrregularBatch, test: IrregularBatch, task: str, seed: int):
    """The task drawn once on the test series, and the test MSE {points: {predictor: value}} on all
    target points and on the unobserved ones."""
    make = interpolation_task if task == "interpolation" else extrapolation_task
    chosen = make(test, FRACTION[task], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        predicted = model.predict(chosen.observed, chosen.target.times)
    return chosen, compare_with_baselines(predicted, chosen, train)


def parts(times: torch.Tensor, windows: int, span: tuple[float, float] | None = None) -> list[torch.Tensor]:
    """Masks of `times` in `windows` equal parts of `span` (default: the span of `times`), closed at both ends."""
    start, end = span or (float(times[0]), float(times[-1]))
    edges = torch.linspace(start, end, windows + 1)
    return [(times >= a) & (times <= b) for a, b in zip(edges[:-1], edges[1:])]


def amplitude_ratios(prediction: torch.Tensor, truth: torch.Tensor, times: torch.Tensor, windows: int,
                     span: tuple[float, float] | None = None) -> list[float]:
    """Peak-to-peak of the prediction over each of `windows` equal parts of `span`, divided by the
    truth's, averaged over series (NaN for a part without predicted times)."""
    ratios = []
    for inside in parts(times, windows, span):
        if not bool(inside.any()):
            ratios.append(math.nan)
            continue
        spread = [x[:, inside].amax(dim=1) - x[:, inside].amin(dim=1) for x in (prediction, truth)]
        ratios.append(float((spread[0] / spread[1]).mean()))
    return ratios


def window_mse(prediction: torch.Tensor, truth: torch.Tensor, times: torch.Tensor, windows: int,
               span: tuple[float, float] | None = None) -> list[float]:
    """Mean squared difference of the prediction from the truth over each of `windows` equal parts
    of `span` (NaN for a part without predicted times): an amplitude ratio near 1 with a drifting
    phase or offset shows here."""
    return [float((prediction[:, inside] - truth[:, inside]).square().mean()) if bool(inside.any()) else math.nan
            for inside in parts(times, windows, span)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", action="store_true", help="the reference's 500 epochs per task")
    parser.add_argument("--epochs", type=int, help="epochs per task (default: interpolation 100, extrapolation 250; "
                        "--reference: 500)")
    parser.add_argument("--series", type=int, default=1000, help="series generated (80%% train, 20%% test)")
    parser.add_argument("--task", nargs="+", default=["interpolation", "extrapolation"],
                        choices=["interpolation", "extrapolation"])
    parser.add_argument("--horizon", type=float, default=10.0,
                        help="predict on [0, horizon] for the plot and the amplitudes")
    parser.add_argument("--start", choices=["first", "target"], default="target",
                        help="z0 at the first target time (the reference's code, the default here: extrapolation "
                             "learns a sustained oscillation from it) or at the first observed time")
    parser.add_argument("--output", default="irregular_series.png")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    epochs = {task: args.epochs or (500 if args.reference else EPOCHS[task]) for task in args.task}
    started = time.perf_counter()
    data = periodic(args.series, 100, seed=args.seed)
    train_ds, test_ds = split(data, 0.8)
    train, test = (IrregularBatch.from_dataset(d, ["x"], device=args.device) for d in (train_ds, test_ds))
    dense = torch.linspace(0.0, args.horizon, 401, device=args.device)
    frequency, offset = (torch.as_tensor(test_ds[name].values, dtype=dense.dtype, device=args.device)
                         for name in ("frequency", "offset"))
    clean = torch.sin(2 * math.pi * frequency[:, None] * dense) + offset[:, None]
    print(f"periodic: {train.series} train and {test.series} test series, 100 points on [0, 5], noise "
          f"{data.attrs['noise']} ({data.attrs['noise_distribution']}); epochs: " + ", ".join(f"{t} {e}" for t, e in epochs.items()))

    results = {}
    for task in args.task:
        print(f"\ntraining the {task} model")
        model = train_model(train, task, epochs[task], args.seed, args.device, args.start)
        chosen, table = scores(model, train, test, task, args.seed + 1)
        with torch.no_grad():
            # from the task's first target time on: where the model's z0 sits with --start target
            shown = dense >= chosen.target.times[0]
            curve = model.predict(chosen.observed, dense[shown])[:, :, 0]
        span = (0.0, args.horizon)
        results[task] = {"chosen": chosen, "table": table, "curve": curve, "times": dense[shown],
                         "ratios": amplitude_ratios(curve, clean[:, shown], dense[shown], 4, span),
                         "mse": window_mse(curve, clean[:, shown], dense[shown], 4, span)}
    print_results(results, args.horizon)
    plot(results, test, dense, clean, args.output)
    print(f"\nplot: {args.output}; {time.perf_counter() - started:.0f} s in all")


def print_results(results: dict, horizon: float) -> None:
    print("\nTest MSE (lower is better)")
    header = f"{'task, points scored':<30}" + "".join(f"{name:>14}" for name in PREDICTORS.values())
    print(header + "\n" + "-" * len(header))
    for task, result in results.items():
        for points in ("all", "unobserved") if task == "interpolation" else ("all",):
            print(f"{task + ', ' + points:<30}" + "".join(f"{result['table'][points][n]:>14.4g}" for n in PREDICTORS))
    quarters = [f"[{horizon * i / 4:g}, {horizon * (i + 1) / 4:g}]" for i in range(4)]
    print("\nPeak-to-peak amplitude, prediction / clean signal, mean over test series (data end at t = 5)")
    print(f"{'model':<30}" + "".join(f"{q:>14}" for q in quarters))
    for task, result in results.items():
        print(f"{task:<30}" + "".join(f"{r:>14.3f}" for r in result["ratios"]))
    print("\nMSE of the prediction against the clean signal, mean over test series (data end at t = 5)")
    print(f"{'model':<30}" + "".join(f"{q:>14}" for q in quarters))
    for task, result in results.items():
        print(f"{task:<30}" + "".join(f"{r:>14.4f}" for r in result["mse"]))


def plot(results: dict, test: IrregularBatch, dense: torch.Tensor, clean: torch.Tensor, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = 3
    figure, axes = plt.subplots(len(results), shown, figsize=(13, 3.2 * len(results)), sharex=True, sharey=True,
                                squeeze=False)
    for row, (task, result) in enumerate(results.items()):
        observed = result["chosen"].observed
        for column, ax in enumerate(axes[row]):
            everything = test.mask[column, :, 0] > 0
            seen = observed.mask[column, :, 0] > 0
            ax.plot(dense.cpu(), clean[column].cpu(), color="0.6", lw=1, label="clean signal")
            ax.plot(test.times[everything].cpu(), test.values[column, everything, 0].cpu(), ".", color="0.4", ms=3,
                    label="data")
            ax.plot(observed.times[seen].cpu(), observed.values[column, seen, 0].cpu(), "o", color="C0", ms=4,
                    label="observed")
            ax.plot(result["times"].cpu(), result["curve"][column].cpu(), color="C3", label="latent ODE")
            ax.axvline(float(test.times[-1]), color="0.5", ls=":")
            if task == "extrapolation":
                ax.axvline(float(result["chosen"].target.times[0]), color="0.5", ls="--")
            ax.set_title(f"{task} model, test series {column}", fontsize=9)
        axes[row, 0].set_ylabel("x")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    for ax in axes[-1]:
        ax.set_xlabel("t (data on [0, 5])")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
