"""Work-precision: function evaluations against error, physode's dopri5 and tsit5 and torchdiffeq's
dopri5, on the same problems and tolerances.

Each method solves each problem forward (no gradient) at rtol = atol = each tolerance; the error is
the largest absolute error over all output times and components against scipy's DOP853 at
rtol = atol = 1e-13, and the work is the number of calls of the vector field. Problems (float64):

    mlp-16    dy/dt = MLP(y), D = 16, hidden 64, batch 256, t in [0, 1], 10 outputs
    mlp-4     dy/dt = MLP(y), D = 4, hidden 32, batch 1, t in [0, 10], 50 outputs
    vdp       Van der Pol, mu = 2, y0 = (2, 0), t in [0, 10], 20 outputs

A method's points (log error, log nfe) are interpolated linearly; "nfe at equal error" is the
number of evaluations physode needs, so interpolated, to reach the error torchdiffeq reaches at
each tolerance, divided by torchdiffeq's (below 1: physode reaches the same error with fewer
evaluations).

    python benchmarks/work_precision.py --threads 1 [--plot docs/work_precision.png]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from harness import Counted, MLPField, Table, choices, fmt
from scipy.integrate import solve_ivp
from torch import nn

F64 = torch.float64
TOLERANCES = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)
METHODS = ("physode dopri5", "physode tsit5", "torchdiffeq dopri5")


class VanDerPol(nn.Module):
    def __init__(self, mu: float):
        super().__init__()
        self.mu = mu

    def forward(self, t, y):
        return torch.stack([y[..., 1], self.mu * (1 - y[..., 0] ** 2) * y[..., 1] - y[..., 0]], dim=-1)


def problems(seed: int) -> dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    return {
        "mlp-16": (MLPField(16, 64).to(F64), torch.randn(256, 16, dtype=F64), torch.linspace(0, 1, 10, dtype=F64)),
        "mlp-4": (MLPField(4, 32).to(F64), torch.randn(1, 4, dtype=F64), torch.linspace(0, 10, 50, dtype=F64)),
        "vdp": (VanDerPol(2.0), torch.tensor([2.0, 0.0], dtype=F64), torch.linspace(0, 10, 20, dtype=F64)),
    }


@torch.no_grad()
def reference(field: nn.Module, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """scipy's DOP853 at rtol = atol = 1e-13."""
    def derivative(s, y):
        return field(torch.tensor(s, dtype=F64), torch.as_tensor(y).reshape(y0.shape)).reshape(-1).numpy()

    result = solve_ivp(derivative, (t[0].item(), t[-1].item()), y0.reshape(-1).numpy(), method="DOP853",
                       t_eval=t.numpy(), rtol=1e-13, atol=1e-13)
    return torch.as_tensor(result.y.T.copy()).reshape(len(t), *y0.shape)


@torch.no_grad()
def solve(method: str, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, tol: float) -> tuple[torch.Tensor, int]:
    func = Counted(field)
    library, name = method.split()
    if library == "physode":
        import physode

        ys = physode.odeint(func, y0, t, method=name, rtol=tol, atol=tol)
    else:
        from torchdiffeq import odeint

        ys = odeint(func, y0, t, method=name, rtol=tol, atol=tol)
    return ys, func.tally.calls


def at_equal_error(ours: list[tuple[int, float]], theirs: list[tuple[int, float]]) -> list[float]:
    """For each of their (nfe, error), our nfe at that error (log-log interpolation) / their nfe;
    only where their error lies within our range."""
    ours = sorted(ours, key=lambda p: p[1])
    log_err = np.log([e for _, e in ours])
    log_nfe = np.log([n for n, _ in ours])
    ratios = []
    for nfe, error in theirs:
        if log_err[0] <= math.log(error) <= log_err[-1]:
            ratios.append(float(np.exp(np.interp(math.log(error), log_err, log_nfe))) / nfe)
    return ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tolerances 1e-4 and 1e-6 only")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--plot", metavar="PATH", help="save the work-precision diagrams (needs matplotlib)")
    args = p.parse_args()
    methods = choices(p, "methods", args.methods, METHODS)
    tolerances = (1e-4, 1e-6) if args.quick else TOLERANCES
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    points: dict[tuple[str, str], list[tuple[int, float]]] = {}
    cells = []
    for problem, (field, y0, t) in problems(args.seed).items():
        truth = reference(field, y0, t)
        for method in methods:
            for tol in tolerances:
                ys, nfe = solve(method, field, y0, t, tol)
                error = (ys - truth).abs().max().item()
                points.setdefault((problem, method), []).append((nfe, error))
                cells.append((problem, method, f"{tol:.0e}", str(nfe), f"{error:.2e}"))
    table = Table(("problem", "method", "tol", "nfe", "max error"), cells, left=(0, 1), groups=[c[0] for c in cells])
    print(f"device cpu; torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("\n".join(table.text()))
    print("\nnfe at equal error, physode / torchdiffeq dopri5 (median over torchdiffeq's tolerances, range):")
    for problem in problems(args.seed):
        theirs = points.get((problem, "torchdiffeq dopri5"))
        for method in (m for m in methods if m.startswith("physode")):
            ratios = at_equal_error(points[(problem, method)], theirs) if theirs else []
            summary = (f"{np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}, {len(ratios)} points)"
                       if ratios else fmt(None, ""))
            print(f"  {problem:8s} {method:16s} {summary}")
    if args.plot:
        plot(points, args.plot)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


def plot(points: dict[tuple[str, str], list[tuple[int, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({problem for problem, _ in points})
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4))
    for axis, problem in zip(np.atleast_1d(axes), names):
        for (which, method), series in points.items():
            if which == problem:
                axis.loglog([e for _, e in series], [n for n, _ in series], "o-", label=method)
        axis.set(title=problem, xlabel="max error", ylabel="function evaluations")
        axis.invert_xaxis()
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
