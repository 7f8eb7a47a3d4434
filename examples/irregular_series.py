"""Irregularly sampled periodic series (the synthetic set of Rubanova et al., NeurIPS 2019) with half
of the points observed: one Latent ODE, trained on both tasks, interpolates them and extrapolates
from the first half of the time span to the second; it is scored against trivial predictors and
plotted.

    python examples/irregular_series.py            # writes irregular_series.png
"""

from __future__ import annotations

import argparse
import time

import torch

from physode.series import feature_mean, hold_last
from physode.datasets import periodic, split
from physode.series import IrregularBatch, extrapolation_task, interpolation_task, mse
from physode.nn import KLAnnealing, LatentODE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.5, help="fraction of the time points observed")
    parser.add_argument("--output", default="irregular_series.png")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train_ds, test_ds = split(periodic(args.series, 100, seed=args.seed), 0.8)
    train, test = (IrregularBatch.from_dataset(d, ["x"]) for d in (train_ds, test_ds))

    torch.manual_seed(args.seed)
    model = LatentODE(1, 10, encoder_hidden=20, encoder_units=(50,), units=(100, 100), obs_std=0.01)
    model.fit(train, task=("interpolation", "extrapolation"), fraction=args.fraction, epochs=args.epochs,
              batch_size=50, lr=1e-2, optimizer="adam", lr_decay=0.995, min_lr=1e-3, kl=KLAnnealing(10, 0.99),
              seed=args.seed)
    results = {}
    for task, make in (("interpolation", interpolation_task), ("extrapolation", extrapolation_task)):
        chosen = make(test, args.fraction, generator=torch.Generator().manual_seed(args.seed + 1))
        with torch.no_grad():
            predicted = model.predict(chosen.observed, chosen.target.times)
            dense_times = torch.linspace(0, 5, 200)
            dense = model.predict(chosen.observed, dense_times)
        scores = {"latent ODE": mse(predicted, chosen.target).item(),
                  "feature mean": mse(feature_mean(train).expand_as(chosen.target.values), chosen.target).item(),
                  "hold last": mse(hold_last(chosen.observed, chosen.target.times), chosen.target).item()}
        results[task] = (chosen, dense_times, dense, scores)

    print(f"\nTest MSE with {args.fraction:.0%} of the points observed ({test.series} series)")
    print(f"{'task':<15}" + "".join(f"{name:>14}" for name in ("latent ODE", "feature mean", "hold last")))
    for task, (_, _, _, scores) in results.items():
        print(f"{task:<15}" + "".join(f"{value:>14.4g}" for value in scores.values()))
    plot(results, test, args.output)
    print(f"plot: {args.output}; {time.perf_counter() - started:.0f} s")


def plot(results: dict, test: IrregularBatch, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 3, figsize=(12, 5.5), sharex=True, sharey=True)
    for row, (task, (chosen, dense_times, dense, _)) in enumerate(results.items()):
        for column, ax in enumerate(axes[row]):
            truth = test.mask[column, :, 0] > 0
            ax.plot(test.times[truth], test.values[column, truth, 0], ".", color="0.75", label="all points")
            seen = chosen.observed.mask[column, :, 0] > 0
            ax.plot(chosen.observed.times[seen], chosen.observed.values[column, seen, 0], "o", color="C0", ms=4,
                    label="observed")
            ax.plot(dense_times, dense[column, :, 0], color="C3", label="latent ODE")
            if task == "extrapolation":
                ax.axvline(float(chosen.target.times[0]), color="0.5", ls=":")
            ax.set_title(f"{task}, test series {column}", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("t")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
