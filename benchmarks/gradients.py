"""Gradient benchmark: physode's ACA and direct gradients against torchdiffeq and TorchDiffEqPack.

One process runs every gradient method on the same problems, all with dopri5 at the same rtol/atol:

    aca             physode, gradient="aca"
    direct          physode, gradient="direct"
    tde-adjoint     torchdiffeq.odeint_adjoint (continuous adjoint)
    tde-odeint      torchdiffeq.odeint, backpropagating through its solver
    tdepack-aca     TorchDiffEqPack.odesolve_adjoint (its Dopri5), skipped if it does not import

Problems:

    mlp      neural ODE dy/dt = MLP(y), Linear(d,h)-Tanh-Linear(h,h)-Tanh-Linear(h,d), d=32, h=64,
             batch 256, t in [0, 1], float32.
    damped   dy/dt = A y with a learnable matrix A = P D P^-1, eigenvalues -1..-20 and a lightly
             damped pair -0.1 +- 2i, over t in [0, 10], float64. Re-integrating the state backwards
             in time, as the continuous adjoint does, amplifies its errors by up to e^(20 T).

The loss is the mean squared distance of y at the output times after t0 (by default only the final
time; --outputs K spaces K of them over the horizon) to a fixed target. For each problem and method
it reports:

    time        median wall time of one forward+backward over --repeats runs, after one warm-up;
                the methods take turns in each round, so that a change of load hits all alike
    nfe         calls of func in the forward and in the backward pass, counted by a wrapper
    memory      peak memory of one forward+backward above what was in use just before it. On CPU
                each (problem, method) is measured in a fresh subprocess (--child): it builds the
                problem, warms the method up on a small copy of it (batch 2, so that the warm-up's
                freed memory, which malloc may keep, is not reused by the measured run), and then
                reports the peak resident set size (RSS) of the measured run minus the RSS before
                it. ru_maxrss survives exec, so a child started by this (large) process would
                inherit the parent's peak; on Linux the child therefore resets its own high-water
                mark (/proc/self/clear_refs) and reads VmHWM from /proc/self/status, which is what
                ru_maxrss reports for a process whose own peak is the larger; elsewhere it falls
                back to ru_maxrss. Lazy one-time allocations that the small warm-up did not
                trigger count against the measured run. On CUDA: torch.cuda.max_memory_allocated
                after reset_peak_memory_stats, minus memory_allocated before.
    grad error  relative L2 error of d loss / d (all parameters, y0) against a reference of the
                continuous problem: physode gradient="direct" in float64 at rtol=atol=--ref-tol
                (1e-12); the line "reference check" gives its distance from the same at 100x
                looser tolerance, an upper bound of the reference's own discretisation error.

It then prints ratios against torchdiffeq with their targets: aca time / tde-adjoint time (<= 0.8),
direct time / tde-odeint time (<= 1.0) and, on the damped problem, aca grad error / tde-adjoint
grad error (<= 0.1).

--sweep TOL [TOL ...] instead measures only nfe and grad error, at each rtol = atol = TOL (methods:
aca, direct and tde-adjoint unless --methods says otherwise), and --plot PATH draws grad error
against tolerance, log-log, one panel per problem, one line per method.

Run from the repository root:

    python benchmarks/gradients.py                   # default run, about a minute on 2 cores
    python benchmarks/gradients.py --quick           # smoke run: tiny sizes, 1 repeat
    python benchmarks/gradients.py --problem damped --repeats 10 --markdown results.md
    python benchmarks/gradients.py --device cuda --threads 1 --rtol 1e-5 --atol 1e-7
    python benchmarks/gradients.py --sweep 1e-4 1e-6 1e-8 --plot gradient_error.png

See --help for the sizes. The test suite never imports this file.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from harness import (
    Counted, Method, MLPField, Problem, Row, Table, available, choices, first_run, fmt, markdown_report,
    memory_in_subprocess, parse, parser, physode_solve, print_peak_memory, relative, row_notes, run_command, text_report,
    time_in_turns, torchdiffeq_adjoint, torchdiffeq_odeint, torchdiffeqpack_intervals, versions,
)

# ----------------------------------------------------------------------------------------------
# Problems
# ----------------------------------------------------------------------------------------------


class LinearField(nn.Module):
    """dy/dt = A y with a learnable A."""

    def __init__(self, matrix: Tensor):
        super().__init__()
        self.A = nn.Parameter(matrix)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return y @ self.A.T


def _output_times(horizon: float, outputs: int) -> Tensor:
    return torch.linspace(0.0, horizon, outputs + 1, dtype=torch.float64)


def mlp_problem(args, batch: int) -> Problem:
    dtype = getattr(torch, args.mlp_dtype)
    torch.manual_seed(args.seed)
    func = Counted(MLPField(args.dim, args.hidden)).to(dtype)
    y0 = torch.randn(args.batch, args.dim, dtype=dtype)[:batch]
    target = torch.randn(args.outputs, args.batch, args.dim, dtype=dtype)[:, :batch]
    return Problem("mlp", func, y0, _output_times(1.0, args.outputs).to(dtype), target).on(args.device)


def damped_matrix(dim: int, generator: torch.Generator) -> Tensor:
    """P D P^-1: real eigenvalues -1..-20 and the pair -0.1 +- 2i, P a well-conditioned random basis."""
    d = torch.zeros(dim, dim, dtype=torch.float64)
    rates = torch.linspace(-1.0, -20.0, dim - 2, dtype=torch.float64)
    d[2:, 2:] = torch.diag(rates)
    d[:2, :2] = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
    noise = torch.randn(dim, dim, dtype=torch.float64, generator=generator)
    p = torch.eye(dim, dtype=torch.float64) + 0.3 * noise / math.sqrt(dim)
    return p @ d @ torch.linalg.inv(p)


def damped_problem(args, batch: int) -> Problem:
    g = torch.Generator().manual_seed(args.seed)
    func = Counted(LinearField(damped_matrix(args.damped_dim, g)))
    y0 = torch.randn(args.damped_batch, args.damped_dim, dtype=torch.float64, generator=g)[:batch]
    target = 0.1 * torch.randn(args.outputs, args.damped_batch, args.damped_dim, dtype=torch.float64, generator=g)
    return Problem("damped", func, y0, _output_times(args.horizon, args.outputs), target[:, :batch]).on(args.device)


PROBLEMS: dict[str, Callable[..., Problem]] = {"mlp": mlp_problem, "damped": damped_problem}

# ----------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("aca", "physode aca", partial(physode_solve, gradient="aca"), "physode"),
    Method("direct", "physode direct", partial(physode_solve, gradient="direct"), "physode"),
    Method("tde-adjoint", "torchdiffeq odeint_adjoint", torchdiffeq_adjoint, "torchdiffeq"),
    Method("tde-odeint", "torchdiffeq odeint (backprop)", torchdiffeq_odeint, "torchdiffeq"),
    Method("tdepack-aca", "TorchDiffEqPack odesolve_adjoint",
           partial(torchdiffeqpack_intervals, solver="odesolve_adjoint",
                   options={"method": "dopri5", "neval_max": 1_000_000}), "TorchDiffEqPack"),
)}

SWEEP_METHODS = ("aca", "direct", "tde-adjoint")

# (numerator, denominator, measured quantity, target, problems it applies to)
RATIOS = (
    ("aca", "tde-adjoint", "time", 0.8, ("mlp", "damped")),
    ("direct", "tde-odeint", "time", 1.0, ("mlp", "damped")),
    ("aca", "tde-adjoint", "grad error", 0.1, ("damped",)),
)

# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def child_main(args) -> None:
    """--child PROBLEM:METHOD: measure one peak memory and print it as JSON on the last line."""
    problem_name, method_name = args.child.split(":")
    build = PROBLEMS[problem_name]
    print_peak_memory(METHODS[method_name], build(args, _batch(args, problem_name)), build(args, 2), args)


def _batch(args, problem: str) -> int:
    return args.batch if problem == "mlp" else args.damped_batch


# flags that define the problem and the solve, passed on to the memory subprocess
SHARED_FLAGS = ("dim", "hidden", "batch", "damped_dim", "damped_batch", "horizon", "outputs", "rtol", "atol",
                "device", "threads", "seed", "mlp_dtype")


def reference(problem: Problem, args) -> tuple[Tensor, float]:
    """The float64 gradient at --ref-tol, and its relative distance from the one at 100x that."""
    direct, double = METHODS["direct"], problem.to(torch.float64)
    tight = direct.run(double, args.ref_tol, args.ref_tol).grad
    loose = direct.run(double, 100 * args.ref_tol, 100 * args.ref_tol).grad
    return tight, relative(loose, tight)


def measure_error(problem_name: str, method: Method, ref: Tensor, args, case=None) -> tuple[Row, Problem]:
    """One untimed run of `method` on a fresh problem at args.rtol, args.atol: the row with its nfe
    and gradient error (None, with a note, if the run failed), and the problem."""
    row, problem = Row(case or problem_name, method.name), PROBLEMS[problem_name](args, _batch(args, problem_name))
    run = first_run(method, problem, args, row)
    if run is not None:
        row.grad_error = relative(run.grad, ref) if bool(torch.isfinite(run.grad).all()) else math.inf
    return row, problem


def measure_problem(problem_name: str, methods: list[Method], ref: Tensor, args) -> list[Row]:
    """Warm-up run of every method (its result gives nfe and gradient error), then --repeats rounds
    that time each method once in turn, then peak memory in subprocesses."""
    rows, timed = [], []
    for method in methods:
        row, problem = measure_error(problem_name, method, ref, args)
        rows.append(row)
        if row.grad_error is not None:
            timed.append((row, method, problem))
    time_in_turns(timed, args)
    for row, method, _ in timed:
        if not args.no_memory:
            row.memory_mib, how = memory_in_subprocess(os.path.abspath(__file__), f"{problem_name}:{method.name}",
                                                       SHARED_FLAGS, args)
            if row.memory_mib is None:
                row.notes.append(how)
    return rows


def sweep_problem(problem_name: str, methods: list[Method], ref: Tensor, args) -> list[Row]:
    """nfe and gradient error of every method at each --sweep tolerance (rtol = atol); the rows'
    case is (problem, tolerance)."""
    return [measure_error(problem_name, method, ref, argparse.Namespace(**{**vars(args), "rtol": tol, "atol": tol}),
                          case=(problem_name, tol))[0]
            for tol in args.sweep for method in methods]


def run_benchmark(args) -> list[Row]:
    methods = available([METHODS[name] for name in args.methods])
    rows = []
    for problem_name in args.problems:
        start = time.perf_counter()
        ref, check = reference(PROBLEMS[problem_name](args, _batch(args, problem_name)), args)
        print(f"{problem_name}: reference check: physode direct float64 at rtol=atol={args.ref_tol:g} differs "
              f"from the same at {100 * args.ref_tol:g} by {check:.2e} (relative L2); "
              f"took {time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        rows += (sweep_problem if args.sweep else measure_problem)(problem_name, methods, ref, args)
        print(f"{problem_name}: measured in {time.perf_counter() - start:.1f} s", flush=True)
    return rows

# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

COLUMNS = ("problem", "method", "time [ms]", "nfe fwd", "nfe bwd", "peak mem [MiB]", "grad rel err")


def table(rows: list[Row]) -> Table:
    cells = [
        (r.case, METHODS[r.method].label, fmt(r.seconds and 1e3 * r.seconds, ".1f"), fmt(r.nfe_forward, "d"),
         fmt(r.nfe_backward, "d"), fmt(r.memory_mib, ".1f"), fmt(r.grad_error, ".2e"))
        for r in rows
    ]
    return Table(COLUMNS, cells, left=(0, 1))


def ratio_lines(rows: list[Row]) -> list[tuple[str, str, str, str]]:
    """(problem, description, value, verdict) for each ratio against torchdiffeq."""
    by_key = {(r.case, r.method): r for r in rows}
    lines = []
    for num, den, what, target, problems in RATIOS:
        for problem in problems:
            a, b = by_key.get((problem, num)), by_key.get((problem, den))
            if a is None or b is None:
                continue
            attr = "seconds" if what == "time" else "grad_error"
            x, y = getattr(a, attr), getattr(b, attr)
            text = f"{num} {what} / {den} {what}"
            if x is None or y is None or (y == 0 and x == 0) or math.isnan(x) or math.isnan(y):
                lines.append((problem, text, "n/a", f"target <= {target}: not measured"))
                continue
            value = x / y if y != 0 else math.inf
            verdict = "met" if value <= target else "not met"
            lines.append((problem, text, f"{value:.3g}", f"target <= {target}: {verdict}"))
    return lines


SWEEP_COLUMNS = ("problem", "rtol=atol", "method", "nfe fwd", "nfe bwd", "grad rel err")


def sweep_table(rows: list[Row]) -> Table:
    cells = [
        (problem, f"{tol:g}", METHODS[r.method].label, fmt(r.nfe_forward, "d"), fmt(r.nfe_backward, "d"),
         fmt(r.grad_error, ".2e"))
        for r in rows for problem, tol in [r.case]
    ]
    return Table(SWEEP_COLUMNS, cells, left=(0, 2), groups=[r.case for r in rows])


def _case(case) -> str:
    return case if isinstance(case, str) else f"{case[0]} at {case[1]:g}"


def format_text(rows: list[Row], args) -> str:
    if args.sweep:
        notes = [f"  {key}: {note}" for key, note in row_notes(rows, _case)]
        return "\n".join([_settings(args), "", *sweep_table(rows).text(), *notes])
    summary = [f"  {p:<7} {text:<42} {value:>9}   {verdict}" for p, text, value, verdict in ratio_lines(rows)]
    return text_report([_settings(args)], table(rows), row_notes(rows), "ratios against torchdiffeq:", summary)


def format_markdown(rows: list[Row], args) -> str:
    if args.sweep:
        notes = [f"- {key}: {note}" for key, note in row_notes(rows, _case)]
        out = [f"_{_settings(args)}_", "", *sweep_table(rows).markdown(), *([""] if notes else []), *notes]
        return "\n".join(out) + "\n"
    summary = Table(("problem", "ratio", "value", "target"), ratio_lines(rows), left=(0, 1, 3))
    return markdown_report(_settings(args), [], table(rows), row_notes(rows), summary)


def _settings(args) -> str:
    if args.sweep:
        solve = f"dopri5, rtol=atol in {', '.join(f'{tol:g}' for tol in args.sweep)}"
    else:
        solve = f"dopri5, rtol={args.rtol:g}, atol={args.atol:g}"
    return (
        f"{solve}; mlp: dim {args.dim}, hidden {args.hidden}, batch {args.batch}, {args.mlp_dtype}; damped: dim "
        f"{args.damped_dim}, batch {args.damped_batch}, T={args.horizon:g}, float64; outputs {args.outputs}; "
        f"{'' if args.sweep else f'median of {args.repeats}; '}{versions(args)}"
    )


STYLES = {"aca": {"linestyle": "-", "marker": "o"}, "direct": {"linestyle": ":", "marker": "x", "markersize": 9}}


def write_plot(rows: list[Row], args) -> None:
    """Gradient error against rtol = atol, log-log: one panel per problem, one line per method, and
    the line y = x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"mlp": f"mlp: neural ODE, dim {args.dim}, batch {args.batch}, {args.mlp_dtype}, T=1",
              "damped": f"damped: dy/dt = A y, dim {args.damped_dim}, batch {args.damped_batch}, T={args.horizon:g}"}
    fig, axes = plt.subplots(1, len(args.problems), figsize=(5.5 * len(args.problems), 4.6), squeeze=False)
    for ax, problem in zip(axes[0], args.problems):
        for name in args.methods:
            points = [(r.case[1], r.grad_error) for r in rows if r.case[0] == problem and r.method == name
                      and r.grad_error is not None and 0 < r.grad_error < math.inf]
            if points:
                style = STYLES.get(name, {"linestyle": "--", "marker": "s"})
                ax.plot(*zip(*points), label=METHODS[name].label, **style)
        ends = (min(args.sweep), max(args.sweep))
        ax.plot(ends, ends, color="grey", linewidth=0.8, linestyle="-.", label="y = x")
        ax.set(xscale="log", yscale="log", title=titles[problem], xlabel="rtol = atol",
               ylabel="relative L2 error of d loss / d (parameters, y0)")
        ax.title.set_fontsize(10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    plt.close(fig)
    print(f"wrote {args.plot}")


def plot(rows: list[Row], args) -> None:
    if args.plot:
        write_plot(rows, args)

# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

QUICK = dict(dim=4, hidden=8, batch=8, damped_dim=4, damped_batch=2, horizon=2.0, repeats=1, ref_tol=1e-10)


def parse_args(argv: list[str] | None = None):
    p = parser(__doc__, "tiny sizes, 1 repeat", repeats=5, rtol=1e-6, atol=1e-8)
    p.add_argument("--problem", default="all", choices=["all", *PROBLEMS], help="which problem (default: all)")
    p.add_argument("--methods", help=f"comma-separated subset of {','.join(METHODS)} (default: all; with --sweep "
                   f"{','.join(SWEEP_METHODS)})")
    p.add_argument("--ref-tol", type=float, default=1e-12, help="rtol = atol of the float64 reference")
    p.add_argument("--dim", type=int, default=32, help="mlp state dimension")
    p.add_argument("--hidden", type=int, default=64, help="mlp hidden width")
    p.add_argument("--batch", type=int, default=256, help="mlp batch")
    p.add_argument("--mlp-dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--damped-dim", type=int, default=8, help="damped state dimension (>= 3)")
    p.add_argument("--damped-batch", type=int, default=16)
    p.add_argument("--horizon", type=float, default=10.0, help="damped problem: t in [0, horizon]")
    p.add_argument("--outputs", type=int, default=1, help="output times after t0 that enter the loss")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--sweep", nargs="+", type=float, metavar="TOL",
                   help="measure only nfe and grad error, at each rtol = atol = TOL")
    p.add_argument("--plot", metavar="PATH", help="with --sweep: PNG plot of grad error against tolerance")
    args = parse(p, argv, QUICK)
    args.methods = choices(p, "methods", args.methods or ",".join(SWEEP_METHODS if args.sweep else METHODS), METHODS)
    if args.sweep is not None:
        if min(args.sweep) <= 0:
            p.error("--sweep tolerances must be positive")
        args.sweep = sorted(set(args.sweep), reverse=True)
    if args.plot and not args.sweep:
        p.error("--plot needs --sweep")
    args.problems = list(PROBLEMS) if args.problem == "all" else [args.problem]
    if args.damped_dim < 3:
        p.error("--damped-dim must be at least 3")
    return args


if __name__ == "__main__":
    run_command(parse_args(), child_main, run_benchmark, format_text, format_markdown, finish=plot)
