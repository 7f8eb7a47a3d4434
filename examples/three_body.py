"""The three-body experiment of the Adaptive Checkpoint Adjoint paper (Zhuang et al., ICML 2020).

Three bodies with masses 1.1, 1.1 and 0.9 move under Newtonian gravity; their noisy positions are
observed on t in [0, 1]. `ThreeBody().fit(observed)` with its defaults (float64,
Levenberg-Marquardt on the exact Jacobian from forward sensitivities) fits the masses and the
initial states; then, as in the paper, the same fit by a first-order optimiser (L-BFGS)
differentiates the solver with physode's `aca` and with torchdiffeq's adjoint. Every fitted
system extrapolates to t in [0, 2]. Prints the fitted masses with standard errors, the mass
errors, the mean squared position error on (1, 2] and the wall time of each fit, and saves a plot
of the true and predicted orbits.

    python examples/three_body.py            # fast default: about a minute on two cores
    python examples/three_body.py --full     # denser data and tighter tolerances
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from physode.datasets import three_body
from physode.systems import ThreeBody

TRUE_MASS = (1.1, 1.1, 0.9)
TARGET_MASS_ERROR = 0.005
TARGET_EXTRAPOLATION_MSE = 1e-4


def fit_and_extrapolate(observed, times, settings: dict) -> dict:
    model = ThreeBody()
    start = time.perf_counter()
    result = model.fit(observed, **settings)
    seconds = time.perf_counter() - start
    future = model.extrapolate(observed, times, initial_state=result.initial_state, rtol=1e-10, atol=1e-10)
    return {"model": model, "result": result, "seconds": seconds, "future": future}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="201 time points and rtol = atol = 1e-10")
    parser.add_argument("--epochs", type=int, default=None, help="L-BFGS epochs of the gradient comparison (default 6, full 10)")
    parser.add_argument("--noise", type=float, default=1e-4, help="standard deviation of the position noise")
    parser.add_argument("--gradients", default="aca,adjoint",
                        help="comma-separated gradient methods to compare with L-BFGS ('' for none)")
    parser.add_argument("--plot", default="three_body.png", help="where to save the orbit plot ('' for none)")
    args = parser.parse_args()
    points = 201 if args.full else 101
    tol = 1e-10 if args.full else 1e-8
    epochs = args.epochs or (10 if args.full else 6)

    data = three_body(mass=TRUE_MASS, t=np.linspace(0.0, 2.0, points))
    noisy = three_body(mass=TRUE_MASS, t=np.linspace(0.0, 2.0, points), noise=args.noise)
    observed = noisy.sel(time=slice(0.0, 1.0)).drop_vars("velocity")
    times = data["time"].values
    future_mask = times > 1.0
    print(f"three bodies, masses {TRUE_MASS}; positions observed at {observed.sizes['time']} times on [0, 1] "
          f"with noise {args.noise:g}")

    runs = {}
    print("\n--- defaults: ThreeBody().fit(observed)")
    runs["default"] = fit_and_extrapolate(observed, times, {"progress": True})
    print(runs["default"]["result"].report().to_string(float_format=lambda v: f"{v:.6g}"))
    for gradient in filter(None, args.gradients.split(",")):
        print(f"\n--- L-BFGS, gradient={gradient!r}, rtol = atol = {tol:g}, {epochs} epochs")
        runs[f"lbfgs {gradient}"] = fit_and_extrapolate(
            observed, times, {"optimizer": "lbfgs", "epochs": epochs, "gradient": gradient, "rtol": tol, "atol": tol,
                              "progress": True})

    print(f"\n{'fit':16s} {'fitted masses':>28s} {'max mass error':>15s} {'MSE on (1, 2]':>14s} {'time [s]':>9s}  stopped")
    for name, run in runs.items():
        mass = run["model"].mass.detach().numpy()
        error = np.max(np.abs(mass - TRUE_MASS) / TRUE_MASS)
        mse = float(((run["future"]["position"].values - data["position"].values)[:, future_mask] ** 2).mean())
        run.update(mass_error=error, mse=mse)
        print(f"{name:16s} {np.array2string(mass, precision=5):>28s} {100 * error:14.4f}% {mse:14.3e} "
              f"{run['seconds']:9.1f}  {run['result'].stop_reason}")
    default = runs["default"]
    print(f"\ntargets with the defaults: masses within {100 * TARGET_MASS_ERROR:g}%: "
          f"{'met' if default['mass_error'] <= TARGET_MASS_ERROR else 'not met'}; "
          f"MSE on (1, 2] <= {TARGET_EXTRAPOLATION_MSE:g}: {'met' if default['mse'] <= TARGET_EXTRAPOLATION_MSE else 'not met'}")
    if args.plot:
        plot(data, runs, args.plot)
        print(f"saved {args.plot}")


def plot(data, runs, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 3.6), squeeze=False)
    times = data["time"].values
    for axis, (name, run) in zip(axes[0], runs.items()):
        for body, color in zip(range(3), ("C0", "C1", "C2")):
            true = data["position"].values[0, :, body]
            predicted = run["future"]["position"].values[0, :, body]
            axis.plot(true[:, 0], true[:, 1], color=color, lw=3, alpha=0.35, label=f"body {body + 1}: true")
            axis.plot(predicted[:, 0], predicted[:, 1], color=color, ls="--", lw=1.2, label=f"body {body + 1}: fitted")
            axis.plot(*true[times <= 1.0][-1, :2], "o", color=color, ms=4)
        axis.set_title(f"{name}: MSE on (1, 2] = {run['mse']:.2e}")
        axis.set_xlabel("x")
        axis.set_ylabel("y")
        axis.set_aspect("equal")
    axes[0][0].legend(fontsize=6, loc="upper center", ncols=3, frameon=False)
    figure.suptitle("three bodies: true orbits (thick) and fitted extrapolation to t = 2 (dashed); dots at t = 1")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
