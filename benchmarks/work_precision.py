"""Work-precision: function evaluations against error, physode's dopri5 and tsit5 against
torchdiffeq's dopri5 and diffrax's dopri5 and tsit5, on the same problems and tolerances.

Each method solves each problem forward (no gradient) at rtol = atol = each tolerance; the error is
the largest absolute error over all output times and components against scipy's DOP853 at
rtol = atol = 1e-13, and the work is the number of calls of the vector field. Problems (float64):

    mlp-16    dy/dt = MLP(y), D = 16, hidden 64, batch 256, t in [0, 1], 10 outputs
    mlp-4     dy/dt = MLP(y), D = 4, hidden 32, batch 1, t in [0, 10], 50 outputs
    vdp       Van der Pol, mu = 2, y0 = (2, 0), t in [0, 10], 20 outputs

Methods (torchdiffeq 0.2.5 has no tsit5):

    physode dopri5, physode tsit5    physode.odeint(method=...)
    torchdiffeq dopri5               torchdiffeq.odeint(method="dopri5")
    diffrax dopri5, diffrax tsit5    diffrax.diffeqsolve(Dopri5() or Tsit5(), PIDController(rtol, atol),
                                     SaveAt(ts=the output times)), in float64 (jax_enable_x64), on the
                                     same vector field with the same weights (copied from the torch
                                     tensors); skipped, with a note, if diffrax does not import

The torch libraries' calls are counted by a wrapper (harness.Counted). diffrax runs a compiled loop,
so its count is derived from its stats: 6 num_steps + 1 (dopri5 and tsit5 reuse a step's last stage
as the next one's first; diffrax's initial step size costs no evaluation, see benchmarks/peers.py).

A method's points (log error, log nfe) are interpolated linearly; "nfe at equal error" is the
number of evaluations a physode method needs, so interpolated, to reach the error a peer method
reaches at each tolerance, divided by the peer's (below 1: physode reaches the same error with
fewer evaluations); the median, range and number of the peer's points inside physode's range of
errors, for every physode method against every peer method. --threads 1 makes XLA's CPU backend
single-threaded too (XLA_FLAGS=--xla_cpu_multi_thread_eigen=false, set before jax is imported).

    python benchmarks/work_precision.py --threads 1 [--plot docs/work_precision.png]
"""

from __future__ import annotations

import argparse
import importlib
import math
import time

import numpy as np
import torch
from harness import Counted, MLPField, Table, choices, fmt, jax_layers, jax_x64, mlp_jax, single_threaded_jax
from scipy.integrate import solve_ivp
from torch import nn

F64 = torch.float64
TOLERANCES = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)
METHODS = ("physode dopri5", "physode tsit5", "torchdiffeq dopri5", "diffrax dopri5", "diffrax tsit5")
PEERS = tuple(m for m in METHODS if not m.startswith("physode"))


def van_der_pol(mu: float, y, xp):
    """dy/dt of Van der Pol's oscillator in the array library xp (torch or jax.numpy)."""
    return xp.stack([y[..., 1], mu * (1 - y[..., 0] ** 2) * y[..., 1] - y[..., 0]], axis=-1)


class VanDerPol(nn.Module):
    def __init__(self, mu: float):
        super().__init__()
        self.mu = mu

    def forward(self, t, y):
        return van_der_pol(self.mu, y, torch)


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


def jax_field(field: nn.Module, jnp):
    """field's f(y) in JAX with the same weights: Van der Pol, or an MLPField (Linear layers with
    tanh between them)."""
    if isinstance(field, VanDerPol):
        return lambda y: van_der_pol(field.mu, y, jnp)
    layers = jax_layers(field, jnp)
    return lambda y: mlp_jax(layers, y, jnp)


def diffrax_solve(name: str, field: nn.Module, y0: torch.Tensor, t: torch.Tensor,
                  tol: float) -> tuple[torch.Tensor, int]:
    jax = jax_x64()
    import diffrax

    f, ts = jax_field(field, jax.numpy), jax.numpy.asarray(t.numpy())
    solver = {"dopri5": diffrax.Dopri5, "tsit5": diffrax.Tsit5}[name]()
    solution = diffrax.diffeqsolve(diffrax.ODETerm(lambda s, y, args: f(y)), solver, ts[0], ts[-1], None,
                                   jax.numpy.asarray(y0.numpy()), saveat=diffrax.SaveAt(ts=ts),
                                   stepsize_controller=diffrax.PIDController(rtol=tol, atol=tol))
    return torch.tensor(np.asarray(solution.ys)), 6 * int(solution.stats["num_steps"]) + 1


@torch.no_grad()
def solve(method: str, field: nn.Module, y0: torch.Tensor, t: torch.Tensor, tol: float) -> tuple[torch.Tensor, int]:
    func = Counted(field)
    library, name = method.split()
    if library == "diffrax":
        return diffrax_solve(name, field, y0, t, tol)
    if library == "physode":
        import physode

        ys = physode.odeint(func, y0, t, method=name, rtol=tol, atol=tol)
    else:
        from torchdiffeq import odeint

        ys = odeint(func, y0, t, method=name, rtol=tol, atol=tol)
    return ys, func.tally.calls


def unavailable(method: str) -> str | None:
    """Why the method's library does not import, or None."""
    library = method.split()[0]
    try:
        importlib.import_module(library)
    except Exception as error:  # noqa: BLE001 - any import failure means "skip"
        return f"{library} does not import ({type(error).__name__}: {error})"
    return None


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


def equal_error_summary(ours: list[tuple[int, float]] | None, theirs: list[tuple[int, float]] | None) -> str:
    """The median, range and number of at_equal_error's ratios, or "-"."""
    ratios = at_equal_error(ours, theirs) if ours and theirs else []
    return f"{np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}, {len(ratios)})" if ratios else fmt(None, "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tolerances 1e-4 and 1e-6 only")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--plot", metavar="PATH", help="save the work-precision diagrams (needs matplotlib)")
    args = p.parse_args()
    tolerances = (1e-4, 1e-6) if args.quick else TOLERANCES
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.threads == 1:
        single_threaded_jax()
    methods = []
    for method in choices(p, "methods", args.methods, METHODS):
        if (why := unavailable(method)) is None:
            methods.append(method)
        else:
            print(f"note: skipping {method}: {why}")
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
    ours = [m for m in methods if m.startswith("physode")]
    theirs = [m for m in PEERS if m in methods]
    summary = Table(("problem", "method", *(f"/ {peer}" for peer in theirs)),
                    [(problem, method, *(equal_error_summary(points.get((problem, method)), points.get((problem, peer)))
                                         for peer in theirs))
                     for problem in problems(args.seed) for method in ours],
                    left=(0, 1))
    print("\nnfe at equal error, physode / peer (median over the peer's tolerances, range, points):")
    print("\n".join(summary.text()))
    if args.plot:
        plot(points, args.plot)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


LINES = {"physode": "-", "torchdiffeq": "--", "diffrax": ":"}
MARKERS = {"dopri5": "o", "tsit5": "s"}


def plot(points: dict[tuple[str, str], list[tuple[int, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter

    names = sorted({problem for problem, _ in points})
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4.4))
    for axis, problem in zip(np.atleast_1d(axes), names):
        for (which, method), series in points.items():
            if which == problem:
                library, name = method.split()
                axis.loglog([e for _, e in series], [n for n, _ in series], LINES[library], marker=MARKERS[name],
                            markersize=4, label=method)
        axis.set(title=problem, xlabel="max error", ylabel="function evaluations")
        axis.yaxis.set_major_formatter(LogFormatter())
        axis.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
        axis.invert_xaxis()
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
