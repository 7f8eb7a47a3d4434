"""Memory benchmark: peak memory and time of one forward+backward as the horizon T grows.

A neural ODE whose number of steps grows with T is solved over t in [0, T] for each T in
--horizons (default 1, 10, 100) by these methods, all at the same rtol/atol:

    direct          physode, dopri5, gradient="direct" (backprop through every stage of every step)
    aca             physode, dopri5, gradient="aca" (one stored state per step)
    aca-binomial    physode, dopri5, gradient="aca", options={"checkpoints": K, "checkpoint_schedule":
                    "binomial"}: at most K stored states (Griewank's revolve schedule)
    aca-uniform     the same with "checkpoint_schedule": "uniform": K evenly spaced states, plus one
                    recomputed interval of about N/K states at a time
    mali            physode, method="alf" (asynchronous leapfrog), gradient="mali": only the final
                    state is kept; earlier states are rebuilt by exact inverse steps
    tde-adjoint     torchdiffeq.odeint_adjoint, dopri5 (continuous adjoint)
    tdepack-mali    TorchDiffEqPack.odesolve_adjoint_sym12 with method "sym12async" (the MALI
                    authors' implementation of the same integrator), skipped if it does not import

Problem: dy/dt = MLP(y) + Omega y, MLP = Linear(d,h)-Tanh-Linear(h,h)-Tanh-Linear(h,d) (d = 32,
h = 64), Omega a fixed rotation (2 x 2 blocks with angular frequencies evenly spaced in [1, 2]), so
that the solution keeps oscillating and the number of steps grows about linearly with T; batch 256,
float32. The same field and y0 (--seed) at every T. The loss is the mean squared distance of y(T)
to a fixed target; the gradient is taken with respect to the MLP's parameters and y0. Tolerances
rtol = 1e-4, atol = 1e-5 for every method: alf is second order, and at gradients.py's 1e-6 it
would need some 10^5 steps at T = 100 (dopri5 takes about 300 there, alf about 17000).

For each T and method it reports:

    steps       accepted steps of the forward pass (and rejected ones) as physode counts them;
                for TorchDiffEqPack derived from its backward pass, which makes 2 calls of func per
                step plus one, so steps = (nfe bwd - 1) / 2; torchdiffeq does not report steps ("-")
    nfe         calls of func in the forward and in the backward pass (recomputation included),
                counted by one wrapper for every library
    time        median wall time of one forward+backward over --repeats runs, after one warm-up;
                the methods take turns in each round, as in gradients.py
    memory      peak memory of one forward+backward above what was in use just before it, each
                (T, method) in a fresh subprocess (--child), as in gradients.py (peak_memory):
                on Linux the child resets its RSS high-water mark (/proc/self/clear_refs) and reports
                VmHWM minus VmRSS before the run; on CUDA torch.cuda.max_memory_allocated. The child
                warms the method up first on batch 2 over the largest horizon up to 10 (about 1000
                alf steps): a backward pass's allocations by malloc and the autograd engine grow over
                its first thousand or so steps and then stay flat (mali at batch 256: +0.25 MiB after
                128 steps, +0.9 after 1278, +1.1 after 16815), and warming up on fewer steps would
                count that settling as growth with T; per-step storage beyond the warm-up's steps
                (the 12-byte step records, say) is still counted at T = 100.
    grad diff   relative L2 distance of the gradient from that of physode direct (dopri5) at the
                same T: ~1e-6 (float32 round-off) for aca and its checkpointed variants, which
                differentiate the same discrete solution; the discretisation difference for the
                others (alf is second order; the adjoint differentiates the continuous problem)

The settings line gives the size of one state (batch x d floats, 32 KiB by default), the unit of
what the methods store: aca one state per step, direct the graph of 6 evaluations per step (about
1 MiB of live tensors per step, some 30 states' worth), mali a few states and the graph of one
evaluation, whatever the number of steps, plus the step grid.

Floor of the memory measurement: RSS is counted in 4 KiB pages, and what malloc and Python keep
from earlier allocations, or allocate lazily, moves a run's peak a little. Repeated fresh children
of the same run (T = 1, default sizes, Linux x86-64, glibc) spread by about 0.1 MiB for mali
(2.3-2.4 MiB) and aca (4.9-5.1 MiB), by about 1 MiB for direct (8.5-9.7 MiB), and by several MiB
for TorchDiffEqPack's MALI (2.7-6.1 MiB in 5 tries); --memory-repeats N reports the median of N
children and their range. So differences below about 0.2 MiB mean nothing, and peaks below about
1 MiB (the --quick sizes) are all floor. On CPU the RSS also counts malloc's fragmentation, not only
live tensors: aca at T = 100 keeps 315 states of 32 KiB (10 MiB) and one step's graph (~2.5 MiB),
yet its peak was 15 MiB in one run and 27-29 MiB in others, as freed stage temporaries between the
kept states are not all reused, and direct's ~320 MiB of live graph spans ~540 MiB of heap; this
is memory the process really holds, but it depends on the allocator and varies between runs. On CUDA torch.cuda.max_memory_allocated counts tensor bytes only (the
caching allocator's 512-byte granularity is the floor there).

Checks, each marked met / not met:

    mali memory at the largest T / at the smallest T              target <= 1.2
    aca-K memory / mali memory at the largest T, for each schedule target <= 1.5
    mali time / tdepack-mali time at each T                        target <= 0.5

It also writes a PNG plot of peak memory (and time) against T, log-log, one line per method
(--plot, default docs/memory.png; with --quick a file in the temporary directory).

Run from the repository root:

    python benchmarks/memory.py --threads 1          # default run, about 6 minutes on 2 cores
    python benchmarks/memory.py --quick              # smoke run: tiny sizes, short horizons
    python benchmarks/memory.py --checkpoints 8 --markdown results.md --plot memory.png
    python benchmarks/memory.py --device cuda --horizons 1,10,100,1000

See --help for the sizes. The test suite never imports this file.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import tempfile
import time
from functools import partial

import torch
from torch import Tensor, nn

from harness import (
    Counted, Method, MLPField, Problem, Row, Run, Table, available, choices, first_run, fmt, markdown_report,
    memory_in_subprocess, parse, parser, physode_solve, print_peak_memory, relative, row_notes, run_command,
    text_report, time_in_turns, torchdiffeq_adjoint, torchdiffeqpack_intervals, versions,
)
from physode.grad import ACA

# ----------------------------------------------------------------------------------------------
# Problem
# ----------------------------------------------------------------------------------------------


def rotation(dim: int) -> Tensor:
    """Block-diagonal skew-symmetric matrix: 2 x 2 rotations with angular frequencies evenly spaced
    in [1, 2] (the last coordinate of an odd dim does not rotate)."""
    pairs = dim // 2
    omega = torch.zeros(dim, dim)
    for k, w in enumerate(torch.linspace(1.0, 2.0, pairs).tolist() if pairs > 1 else [1.0] * pairs):
        omega[2 * k, 2 * k + 1], omega[2 * k + 1, 2 * k] = w, -w
    return omega


class OscillatorField(nn.Module):
    """dy/dt = MLP(y) + Omega y with a fixed rotation Omega (a buffer, not a parameter)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.mlp = MLPField(dim, hidden)
        self.register_buffer("omega", rotation(dim))

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.mlp(t, y) + y @ self.omega.T


def oscillator_problem(args, horizon: float, batch: int) -> Problem:
    """The problem over t in [0, horizon]; the same field, y0 and target (first `batch` rows) for
    every horizon and batch."""
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    func = Counted(OscillatorField(args.dim, args.hidden)).to(dtype)
    y0 = torch.randn(args.batch, args.dim, dtype=dtype)[:batch]
    target = torch.randn(1, args.batch, args.dim, dtype=dtype)[:, :batch]
    t = torch.tensor([0.0, horizon], dtype=dtype)
    return Problem(f"T={horizon:g}", func, y0, t, target).on(args.device)

# ----------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------


def method_table(checkpoints: int) -> dict[str, Method]:
    """The methods, in table order; K = `checkpoints` for the two checkpointed aca rows."""
    def physode(method: str, gradient) -> partial:
        return partial(physode_solve, method=method, gradient=gradient)

    binomial, uniform = ACA(checkpoints=checkpoints), ACA(checkpoints=checkpoints, schedule="uniform")
    return {m.name: m for m in (
        Method("direct", "physode direct (dopri5)", physode("dopri5", "direct"), "physode"),
        Method("aca", "physode aca (dopri5)", physode("dopri5", "aca"), "physode"),
        Method("aca-binomial", f"physode aca K={checkpoints} binomial", physode("dopri5", binomial), "physode"),
        Method("aca-uniform", f"physode aca K={checkpoints} uniform", physode("dopri5", uniform), "physode"),
        Method("aca-binomial-alf", f"physode aca K={checkpoints} binomial (alf)", physode("alf", binomial), "physode"),
        Method("mali", "physode mali (alf)", physode("alf", "mali"), "physode"),
        Method("tde-adjoint", "torchdiffeq odeint_adjoint (dopri5)", torchdiffeq_adjoint, "torchdiffeq"),
        Method("tdepack-mali", "TorchDiffEqPack MALI (sym12async)",
               partial(torchdiffeqpack_intervals, solver="odesolve_adjoint_sym12",
                       options={"method": "sym12async", "neval_max": 1_000_000, "print_neval": False}),
               "TorchDiffEqPack"),
    )}


METHOD_NAMES = tuple(method_table(1))
PHYSODE = tuple(name for name, m in method_table(1).items() if m.module == "physode")
CHECKPOINTED = ("aca-binomial", "aca-uniform", "aca-binomial-alf")


def tdepack_steps(run: Run) -> int | None:
    """TorchDiffEqPack's MALI steps, from its backward evaluations: one per step, plus one."""
    return (run.nfe_backward - 1) // 2 if run.nfe_backward % 2 == 1 else None

# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def child_main(args) -> None:
    """--child T:METHOD: measure one peak memory and print it as JSON on the last line."""
    horizon, method_name = args.child.split(":")
    problem = oscillator_problem(args, float(horizon), args.batch)
    warmup = oscillator_problem(args, warmup_horizon(args), 2)
    print_peak_memory(method_table(args.checkpoints)[method_name], problem, warmup, args)


def warmup_horizon(args) -> float:
    """The largest horizon up to 10: about 1000 alf steps, enough for malloc and the autograd engine
    to reach their steady state in a backward pass, yet short of the longest horizon, so that the
    per-step storage of longer runs is still counted."""
    return max([h for h in args.horizon_values if h <= 10] or [min(args.horizon_values)])


# flags that define the problem and the solve, passed on to the memory subprocess
SHARED_FLAGS = ("dim", "hidden", "batch", "dtype", "rtol", "atol", "checkpoints", "horizons", "device",
                "threads", "seed")


def measure_horizon(horizon: float, methods: list[Method], args) -> list[Row]:
    """Warm-up run of every method (nfe, steps, gradient), then --repeats rounds that time each
    method once in turn, then peak memory in subprocesses."""
    rows, timed, grads = [], [], {}
    for method in methods:
        row, problem = Row(horizon, method.name), oscillator_problem(args, horizon, args.batch)
        rows.append(row)
        run = first_run(method, problem, args, row, warnings_as_notes=True)
        if run is not None and method.name == "tdepack-mali":
            row.steps = tdepack_steps(run)
        if run is not None:
            grads[method.name] = run.grad
            timed.append((row, method, problem))
        del run
        gc.collect()
    reference = grads.get("direct")
    for row in rows:
        if reference is not None and row.method in grads:
            g = grads[row.method]
            row.grad_diff = relative(g, reference) if bool(torch.isfinite(g).all()) else math.inf
    time_in_turns(timed, args, collect=True)
    del timed
    gc.collect()
    if not args.no_memory:
        for row in rows:
            if any(note.startswith("failed") for note in row.notes):
                continue
            row.memory_mib = memory_median(horizon, row, args)
    return rows


def memory_median(horizon: float, row: Row, args) -> float | None:
    """Median peak memory growth (MiB) over --memory-repeats fresh subprocesses; None (with a
    note) if one fails; their range goes into the notes when there are several."""
    values = []
    for _ in range(args.memory_repeats):
        mib, how = memory_in_subprocess(os.path.abspath(__file__), f"{horizon!r}:{row.method}", SHARED_FLAGS, args)
        if mib is None:
            row.notes.append(how)
            return None
        values.append(mib)
        args.memory_how = how
    if len(values) > 1:
        row.notes.append(f"peak memory of {len(values)} subprocesses: {min(values):.2f} to {max(values):.2f} MiB")
    return statistics.median(values)


def run_benchmark(args) -> list[Row]:
    table = method_table(args.checkpoints)
    methods = available([table[name] for name in args.methods])
    rows = []
    for horizon in args.horizon_values:
        start = time.perf_counter()
        rows += measure_horizon(horizon, methods, args)
        print(f"T={horizon:g}: measured in {time.perf_counter() - start:.1f} s", flush=True)
    return rows

# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

COLUMNS = ("T", "method", "steps", "rejected", "nfe fwd", "nfe bwd", "time [ms]", "peak mem [MiB]", "grad diff")


def table(rows: list[Row], args) -> Table:
    labels = {name: m.label for name, m in method_table(args.checkpoints).items()}
    cells = [
        (f"{r.case:g}", labels[r.method], fmt(r.steps, "d"), fmt(r.rejected, "d"), fmt(r.nfe_forward, "d"),
         fmt(r.nfe_backward, "d"), fmt(r.seconds and 1e3 * r.seconds, ".1f"), fmt(r.memory_mib, ".2f"),
         fmt(r.grad_diff, ".1e"))
        for r in rows
    ]
    return Table(COLUMNS, cells, left=(1,), groups=[r.case for r in rows])


def notes(rows: list[Row]) -> list[tuple[str, str]]:
    return row_notes(rows, lambda horizon: f"T={horizon:g}")


def _ratio(x: float | None, y: float | None, text: str, target: float) -> tuple[str, str, str]:
    if x is None or y is None or math.isnan(x) or math.isnan(y) or y <= 0:
        return text, "n/a", f"target <= {target}: not measured"
    value = x / y
    return text, f"{value:.3g}", f"target <= {target}: {'met' if value <= target else 'not met'}"


def check_lines(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(description, value, verdict) for each check."""
    by_key = {(r.case, r.method): r for r in rows}
    horizons = sorted({r.case for r in rows})
    if not horizons:
        return []
    first, last = horizons[0], horizons[-1]

    def get(horizon, method, attr):
        row = by_key.get((horizon, method))
        return None if row is None else getattr(row, attr)

    lines = []
    if len(horizons) > 1 and (last, "mali") in by_key:
        lines.append(_ratio(get(last, "mali", "memory_mib"), get(first, "mali", "memory_mib"),
                            f"mali memory T={last:g} / mali memory T={first:g}", 1.2))
    for name in CHECKPOINTED:
        if (last, name) in by_key and (last, "mali") in by_key:
            lines.append(_ratio(get(last, name, "memory_mib"), get(last, "mali", "memory_mib"),
                                f"{name} memory / mali memory at T={last:g}", 1.5))
    for horizon in horizons:
        if (horizon, "mali") in by_key and (horizon, "tdepack-mali") in by_key:
            lines.append(_ratio(get(horizon, "mali", "seconds"), get(horizon, "tdepack-mali", "seconds"),
                                f"mali time / tdepack-mali time at T={horizon:g}", 0.5))
    return lines


def format_text(rows: list[Row], args) -> str:
    checks = check_lines(rows)
    width = max((len(text) for text, _, _ in checks), default=0)
    summary = [f"  {text:<{width}} {value:>7}   {verdict}" for text, value, verdict in checks]
    return text_report([_settings(args)], table(rows, args), notes(rows), "checks:", summary)


def format_markdown(rows: list[Row], args) -> str:
    summary = Table(("check", "value", "target"), check_lines(rows), left=(0, 2))
    return markdown_report(_settings(args), [], table(rows, args), notes(rows), summary)


def _settings(args) -> str:
    state_kib = args.batch * args.dim * torch.tensor([], dtype=getattr(torch, args.dtype)).element_size() / 1024
    return (
        f"rtol={args.rtol:g}, atol={args.atol:g}; dy/dt = MLP(y) + Omega y, dim {args.dim}, hidden {args.hidden}, "
        f"batch {args.batch}, {args.dtype}, one state {state_kib:g} KiB; K={args.checkpoints}; "
        f"median of {args.repeats}; memory {getattr(args, 'memory_how', 'not measured')}; {versions(args)}"
    )


def write_plot(rows: list[Row], args, path: str) -> None:
    """Peak memory and time against T, log-log, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {name: m.label for name, m in method_table(args.checkpoints).items()}
    fig, (mem_ax, time_ax) = plt.subplots(1, 2, figsize=(12, 5))
    floor = 1e-2  # MiB: values at or below the noise floor (even negative) are drawn here
    for name in args.methods:
        points = [r for r in rows if r.method == name]
        mem = [(r.case, max(r.memory_mib, floor)) for r in points if r.memory_mib is not None]
        sec = [(r.case, r.seconds) for r in points if r.seconds is not None]
        style = dict(marker="o", label=labels[name], linestyle="-" if name in PHYSODE else "--")
        if mem:
            mem_ax.plot(*zip(*mem), **style)
        if sec:
            time_ax.plot(*zip(*sec), **style)
    for ax, ylabel in ((mem_ax, "peak memory of forward+backward [MiB]"), (time_ax, "time of forward+backward [s]")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("horizon T")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    mem_ax.legend(fontsize=8)
    mem_ax.set_title("peak memory")
    time_ax.set_title("time (median)")
    fig.suptitle(
        f"dy/dt = MLP(y) + Omega y, dim {args.dim}, hidden {args.hidden}, batch {args.batch}, {args.dtype}, "
        f"rtol={args.rtol:g}, atol={args.atol:g}, device {args.device}", fontsize=10,
    )
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

QUICK = dict(dim=4, hidden=8, batch=8, horizons="1,4", repeats=1, checkpoints=4,
             plot=os.path.join(tempfile.gettempdir(), "physode-memory-quick.png"))
DEFAULT_PLOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "memory.png")


def parse_args(argv: list[str] | None = None):
    p = parser(__doc__, "tiny sizes, short horizons, 1 repeat, plot to the temporary directory", repeats=3,
               rtol=1e-4, atol=1e-5)
    p.add_argument("--horizons", default="1,10,100", help="comma-separated horizons T")
    p.add_argument("--methods", default=",".join(METHOD_NAMES), help=f"comma-separated subset of {','.join(METHOD_NAMES)}")
    p.add_argument("--checkpoints", type=int, default=16, help="K, the stored-state budget of aca-binomial and aca-uniform")
    p.add_argument("--dim", type=int, default=32, help="state dimension")
    p.add_argument("--hidden", type=int, default=64, help="MLP hidden width")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--memory-repeats", type=int, default=1,
                   help="fresh subprocesses per (T, method) for peak memory (median reported)")
    p.add_argument("--plot", metavar="PATH", default=DEFAULT_PLOT, help="PNG plot of memory and time against T "
                   "(default docs/memory.png; '' for none)")
    args = parse(p, argv, QUICK)
    args.methods = choices(p, "methods", args.methods, METHOD_NAMES)
    try:
        args.horizon_values = sorted({float(h) for h in args.horizons.split(",") if h.strip()})
    except ValueError:
        p.error(f"--horizons must be comma-separated numbers, got {args.horizons!r}")
    if not args.horizon_values or min(args.horizon_values) <= 0:
        p.error("--horizons must be positive")
    if args.memory_repeats < 1:
        p.error("--memory-repeats must be at least 1")
    if args.checkpoints < 1:
        p.error("--checkpoints must be at least 1")
    return args


def plot(rows, args) -> None:
    if args.plot:
        write_plot(rows, args, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    run_command(parse_args(), child_main, run_benchmark, format_text, format_markdown, finish=plot)
