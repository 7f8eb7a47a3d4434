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

Run from the repository root:

    python benchmarks/gradients.py                   # default run, about a minute on 2 cores
    python benchmarks/gradients.py --quick           # smoke run: tiny sizes, 1 repeat
    python benchmarks/gradients.py --problem damped --repeats 10 --markdown results.md
    python benchmarks/gradients.py --device cuda --threads 1 --rtol 1e-5 --atol 1e-7

See --help for the sizes. The test suite never imports this file.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor, nn

# ----------------------------------------------------------------------------------------------
# Problems
# ----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    calls: int = 0


class Counted(nn.Module):
    """Wraps func(t, y) and counts its calls, so that every library is counted the same way. (The
    count lives on a plain object: nn.Module.__setattr__ would add microseconds to every call.)"""

    def __init__(self, vector_field: nn.Module):
        super().__init__()
        self.vector_field = vector_field
        self.tally = Tally()

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.tally.calls += 1
        return self.vector_field(t, y)


class MLPField(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, dim)
        )

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.net(y)


class LinearField(nn.Module):
    """dy/dt = A y with a learnable A."""

    def __init__(self, matrix: Tensor):
        super().__init__()
        self.A = nn.Parameter(matrix)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return y @ self.A.T


@dataclass
class Problem:
    """func (a Counted module), a leaf y0 that requires grad, output times t and the loss's target."""

    name: str
    func: Counted
    y0: Tensor
    t: Tensor
    target: Tensor

    def inputs(self) -> list[Tensor]:
        return [*self.func.parameters(), self.y0]

    def loss(self, ys: Tensor) -> Tensor:
        return (ys[1:] - self.target).square().mean()

    def to(self, dtype: torch.dtype) -> Problem:
        """The same continuous problem in another dtype (a copy; this one is left alone)."""
        func = copy.deepcopy(self.func).to(dtype)
        y0 = self.y0.detach().to(dtype).requires_grad_(True)
        return Problem(self.name, func, y0, self.t.to(dtype), self.target.to(dtype))


def _output_times(horizon: float, outputs: int) -> Tensor:
    return torch.linspace(0.0, horizon, outputs + 1, dtype=torch.float64)


def mlp_problem(args, batch: int) -> Problem:
    dtype = getattr(torch, args.mlp_dtype)
    torch.manual_seed(args.seed)
    func = Counted(MLPField(args.dim, args.hidden)).to(dtype)
    y0 = torch.randn(args.batch, args.dim, dtype=dtype)[:batch]
    target = torch.randn(args.outputs, args.batch, args.dim, dtype=dtype)[:, :batch]
    return _on_device(Problem("mlp", func, y0, _output_times(1.0, args.outputs).to(dtype), target), args.device)


def damped_matrix(dim: int, generator: torch.Generator) -> Tensor:
    """P D P^-1: real eigenvalues -1..-20 and the pair -0.1 +- 2i, P a well-conditioned random basis."""
    d = torch.zeros(dim, dim, dtype=torch.float64)
    rates = torch.linspace(-1.0, -20.0, dim - 2, dtype=torch.float64)
    d[2:, 2:] = torch.diag(rates)
    d[:2, :2] = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
    p = torch.eye(dim, dtype=torch.float64) + 0.3 * torch.randn(dim, dim, dtype=torch.float64, generator=generator) / math.sqrt(dim)
    return p @ d @ torch.linalg.inv(p)


def damped_problem(args, batch: int) -> Problem:
    g = torch.Generator().manual_seed(args.seed)
    func = Counted(LinearField(damped_matrix(args.damped_dim, g)))
    y0 = torch.randn(args.damped_batch, args.damped_dim, dtype=torch.float64, generator=g)[:batch]
    target = 0.1 * torch.randn(args.outputs, args.damped_batch, args.damped_dim, dtype=torch.float64, generator=g)
    problem = Problem("damped", func, y0, _output_times(args.horizon, args.outputs), target[:, :batch])
    return _on_device(problem, args.device)


def _on_device(problem: Problem, device: str) -> Problem:
    problem.func.to(device)
    problem.y0 = problem.y0.to(device).requires_grad_(True)
    problem.t, problem.target = problem.t.to(device), problem.target.to(device)
    return problem


PROBLEMS: dict[str, Callable[..., Problem]] = {"mlp": mlp_problem, "damped": damped_problem}

# ----------------------------------------------------------------------------------------------
# Methods: each solves func from y0 at times t and returns ys, differentiably
# ----------------------------------------------------------------------------------------------


def _physode(func, y0, t, rtol, atol, *, gradient: str) -> Tensor:
    import physode

    return physode.odeint(func, y0, t, method="dopri5", rtol=rtol, atol=atol, gradient=gradient)


def _torchdiffeq_odeint(func, y0, t, rtol, atol) -> Tensor:
    from torchdiffeq import odeint

    return odeint(func, y0, t, rtol=rtol, atol=atol, method="dopri5")


def _torchdiffeq_adjoint(func, y0, t, rtol, atol) -> Tensor:
    from torchdiffeq import odeint_adjoint

    return odeint_adjoint(func, y0, t, rtol=rtol, atol=atol, method="dopri5")


def _tdepack_aca(func, y0, t, rtol, atol) -> Tensor:
    """TorchDiffEqPack returns only the end state, so several output times are solved interval by
    interval (each restarting its step-size search). It keeps times in float32."""
    from TorchDiffEqPack import odesolve_adjoint

    times, ys = t.tolist(), [y0]
    for t0, t1 in zip(times, times[1:]):
        options = {"method": "dopri5", "t0": t0, "t1": t1, "h": None, "rtol": rtol, "atol": atol,
                   "neval_max": 1_000_000}
        ys.append(odesolve_adjoint(func, ys[-1], options=options))
    return torch.stack(ys)


@dataclass
class Run:
    """One forward+backward: the loss, the flattened float64 gradient and the func calls."""

    loss: float
    grad: Tensor
    nfe_forward: int
    nfe_backward: int


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    solve: Callable[..., Tensor]
    module: str  # what must import for the method to run

    def unavailable(self) -> str | None:
        try:
            importlib.import_module(self.module)
        except Exception as error:  # noqa: BLE001 - any import failure means "skip"
            return f"{self.module} does not import ({type(error).__name__}: {error})"
        return None

    def run(self, problem: Problem, rtol: float, atol: float) -> Run:
        """Forward, loss, backward (torch.autograd.grad w.r.t. every parameter and y0)."""
        func, inputs, tally = problem.func, problem.inputs(), problem.func.tally
        tally.calls = 0
        ys = self.solve(func, problem.y0, problem.t, rtol, atol)
        nfe_forward = tally.calls
        loss = problem.loss(ys)
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        flat = [(torch.zeros_like(x) if g is None else g).detach().reshape(-1) for g, x in zip(grads, inputs)]
        return Run(loss.item(), torch.cat(flat).double().cpu(), nfe_forward, tally.calls - nfe_forward)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("aca", "physode aca", partial(_physode, gradient="aca"), "physode"),
    Method("direct", "physode direct", partial(_physode, gradient="direct"), "physode"),
    Method("tde-adjoint", "torchdiffeq odeint_adjoint", _torchdiffeq_adjoint, "torchdiffeq"),
    Method("tde-odeint", "torchdiffeq odeint (backprop)", _torchdiffeq_odeint, "torchdiffeq"),
    Method("tdepack-aca", "TorchDiffEqPack odesolve_adjoint", _tdepack_aca, "TorchDiffEqPack"),
)}

# (numerator, denominator, measured quantity, target, problems it applies to)
RATIOS = (
    ("aca", "tde-adjoint", "time", 0.8, ("mlp", "damped")),
    ("direct", "tde-odeint", "time", 1.0, ("mlp", "damped")),
    ("aca", "tde-adjoint", "grad error", 0.1, ("damped",)),
)

# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_run(method: Method, problem: Problem, args) -> float:
    """Wall time of one forward+backward, in seconds."""
    _sync(args.device)
    start = time.perf_counter()
    method.run(problem, args.rtol, args.atol)
    _sync(args.device)
    return time.perf_counter() - start


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Set this process's RSS high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_kb("VmHWM") is not None
    except OSError:
        return False


def _rss_bytes() -> int:
    kb = _proc_status_kb("VmRSS")
    return kb * 1024 if kb is not None else _ru_maxrss_bytes()


def _ru_maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def peak_memory(method: Method, problem: Problem, warmup: Problem, args) -> dict:
    """Peak memory of one forward+backward above the memory in use just before it, in bytes."""
    method.run(warmup, args.rtol, args.atol)
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        method.run(problem, args.rtol, args.atol)
        torch.cuda.synchronize()
        return {"bytes": torch.cuda.max_memory_allocated() - before, "how": "cuda max_memory_allocated"}
    own_peak = _reset_peak_rss()
    before = _rss_bytes()
    method.run(problem, args.rtol, args.atol)
    if own_peak:
        return {"bytes": _proc_status_kb("VmHWM") * 1024 - before, "how": "VmHWM - VmRSS"}
    return {"bytes": _ru_maxrss_bytes() - before, "how": "ru_maxrss - RSS"}


def child_main(args) -> None:
    """--child PROBLEM:METHOD: measure one peak memory and print it as JSON on the last line."""
    problem_name, method_name = args.child.split(":")
    method, build = METHODS[method_name], PROBLEMS[problem_name]
    problem, warmup = build(args, _batch(args, problem_name)), build(args, 2)
    print(json.dumps(peak_memory(method, problem, warmup, args)))


def _batch(args, problem: str) -> int:
    return args.batch if problem == "mlp" else args.damped_batch


# flags that define the problem and the solve, passed on to the memory subprocess
SHARED_FLAGS = ("dim", "hidden", "batch", "damped_dim", "damped_batch", "horizon", "outputs", "rtol", "atol",
                "device", "threads", "seed", "mlp_dtype")


def memory_in_child(problem: str, method: str, args) -> tuple[float | None, str]:
    """Peak memory growth in MiB measured in a fresh process, or None and why."""
    return memory_in_subprocess(os.path.abspath(__file__), f"{problem}:{method}", SHARED_FLAGS, args)


def memory_in_subprocess(script: str, child: str, flags: tuple[str, ...], args) -> tuple[float | None, str]:
    """Run `python SCRIPT --child CHILD` with the given flags of args (names as in argparse's
    namespace, passed as --name-with-dashes VALUE, None left out); the peak memory growth in MiB it
    prints as JSON on its last line, and how it was measured, or None and why it failed."""
    argv = [sys.executable, script, "--child", child]
    for name in flags:
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return None, "memory child timed out"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"memory child failed: {last}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["bytes"] / 2**20, result["how"]

# ----------------------------------------------------------------------------------------------
# Benchmark
# ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    problem: str
    method: str
    seconds: float | None = None
    nfe_forward: int | None = None
    nfe_backward: int | None = None
    memory_mib: float | None = None
    grad_error: float | None = None
    notes: list[str] = field(default_factory=list)


def reference(problem: Problem, args) -> tuple[Tensor, float]:
    """The float64 gradient at --ref-tol, and its relative distance from the one at 100x that."""
    direct, double = METHODS["direct"], problem.to(torch.float64)
    tight = direct.run(double, args.ref_tol, args.ref_tol).grad
    loose = direct.run(double, 100 * args.ref_tol, 100 * args.ref_tol).grad
    return tight, _relative(loose, tight)


def _relative(x: Tensor, ref: Tensor) -> float:
    return float((x - ref).norm() / ref.norm())


def measure_problem(problem_name: str, methods: list[Method], ref: Tensor, args) -> list[Row]:
    """Warm-up run of every method (its result gives nfe and gradient error), then --repeats rounds
    that time each method once in turn, so that a change of machine load hits all of them alike,
    then peak memory in subprocesses."""
    rows, timed = [], []
    for method in methods:
        row, problem = Row(problem_name, method.name), PROBLEMS[problem_name](args, _batch(args, problem_name))
        rows.append(row)
        try:
            run = method.run(problem, args.rtol, args.atol)
        except Exception as error:  # noqa: BLE001 - a failing method is a result, not a crash
            row.notes.append(f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}")
            continue
        row.nfe_forward, row.nfe_backward = run.nfe_forward, run.nfe_backward
        row.grad_error = _relative(run.grad, ref) if bool(torch.isfinite(run.grad).all()) else math.inf
        timed.append((row, method, problem, []))
    for _ in range(args.repeats):
        for row, method, problem, seconds in timed:
            seconds.append(timed_run(method, problem, args))
    for row, method, problem, seconds in timed:
        row.seconds = statistics.median(seconds) if seconds else None
        if not args.no_memory:
            row.memory_mib, how = memory_in_child(problem_name, method.name, args)
            if row.memory_mib is None:
                row.notes.append(how)
    return rows


def run_benchmark(args) -> list[Row]:
    methods = [METHODS[name] for name in args.methods]
    for m in methods:
        if (why := m.unavailable()) is not None:
            print(f"note: skipping {m.name}: {why}")
    methods = [m for m in methods if m.unavailable() is None]
    rows = []
    for problem_name in args.problems:
        start = time.perf_counter()
        ref, check = reference(PROBLEMS[problem_name](args, _batch(args, problem_name)), args)
        print(f"{problem_name}: reference check: physode direct float64 at rtol=atol={args.ref_tol:g} differs "
              f"from the same at {100 * args.ref_tol:g} by {check:.2e} (relative L2); "
              f"took {time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        rows += measure_problem(problem_name, methods, ref, args)
        print(f"{problem_name}: measured in {time.perf_counter() - start:.1f} s", flush=True)
    return rows

# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

COLUMNS = ("problem", "method", "time [ms]", "nfe fwd", "nfe bwd", "peak mem [MiB]", "grad rel err")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_cells(rows: list[Row]) -> list[tuple[str, ...]]:
    return [
        (r.problem, METHODS[r.method].label, _fmt(r.seconds and 1e3 * r.seconds, ".1f"), _fmt(r.nfe_forward, "d"),
         _fmt(r.nfe_backward, "d"), _fmt(r.memory_mib, ".1f"), _fmt(r.grad_error, ".2e"))
        for r in rows
    ]


def ratio_lines(rows: list[Row]) -> list[tuple[str, str, str, str]]:
    """(problem, description, value, verdict) for each ratio against torchdiffeq."""
    by_key = {(r.problem, r.method): r for r in rows}
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


def format_text(rows: list[Row], args) -> str:
    cells = [COLUMNS, *table_cells(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

    def line(c):
        return "  ".join(s.ljust(w) if i < 2 else s.rjust(w) for i, (s, w) in enumerate(zip(c, widths)))

    out = [_settings(args), "", line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])]
    out += [f"  {r.problem} / {r.method}: {note}" for r in rows for note in r.notes]
    out += ["", "ratios against torchdiffeq:"]
    out += [f"  {p:<7} {text:<42} {value:>9}   {verdict}" for p, text, value, verdict in ratio_lines(rows)]
    return "\n".join(out)


def format_markdown(rows: list[Row], args) -> str:
    def row(cells):
        return "| " + " | ".join(cells) + " |"

    out = [f"_{_settings(args)}_", "", row(COLUMNS), row(["---"] * 2 + ["---:"] * (len(COLUMNS) - 2))]
    out += [row(c) for c in table_cells(rows)]
    notes = [f"- {r.problem} / {r.method}: {note}" for r in rows for note in r.notes]
    out += ["", *notes, *([""] if notes else [])]
    out += [row(("problem", "ratio", "value", "target")), row(("---", "---", "---:", "---"))]
    out += [row(r) for r in ratio_lines(rows)]
    return "\n".join(out) + "\n"


def _settings(args) -> str:
    return (
        f"dopri5, rtol={args.rtol:g}, atol={args.atol:g}; mlp: dim {args.dim}, hidden {args.hidden}, "
        f"batch {args.batch}, {args.mlp_dtype}; damped: dim {args.damped_dim}, batch {args.damped_batch}, "
        f"T={args.horizon:g}, float64; outputs {args.outputs}; median of {args.repeats}; device {args.device}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

QUICK = dict(dim=4, hidden=8, batch=8, damped_dim=4, damped_batch=2, horizon=2.0, repeats=1, ref_tol=1e-10)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 repeat (explicit flags still win)")
    p.add_argument("--problem", default="all", choices=["all", *PROBLEMS], help="which problem (default: all)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats after the warm-up (median reported)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for every method (default: torch's)")
    p.add_argument("--rtol", type=float, default=1e-6)
    p.add_argument("--atol", type=float, default=1e-8)
    p.add_argument("--ref-tol", type=float, default=1e-12, help="rtol = atol of the float64 reference")
    p.add_argument("--dim", type=int, default=32, help="mlp state dimension")
    p.add_argument("--hidden", type=int, default=64, help="mlp hidden width")
    p.add_argument("--batch", type=int, default=256, help="mlp batch")
    p.add_argument("--mlp-dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--damped-dim", type=int, default=8, help="damped state dimension (>= 3)")
    p.add_argument("--damped-batch", type=int, default=16)
    p.add_argument("--horizon", type=float, default=10.0, help="damped problem: t in [0, horizon]")
    p.add_argument("--outputs", type=int, default=1, help="output times after t0 that enter the loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--markdown", metavar="PATH", help="also write the table and ratios as markdown")
    p.add_argument("--child", metavar="PROBLEM:METHOD", help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    args.problems = list(PROBLEMS) if args.problem == "all" else [args.problem]
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    if args.damped_dim < 3:
        p.error("--damped-dim must be at least 3")
    return args


def _warn_if_busy() -> None:
    """Threads that wait on each other slow down erratically when other processes hold the cores."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 and torch.get_num_threads() > 1:
        print(f"note: 1-minute load average {load:.2f} on {cores} cores before starting; if other processes "
              f"compete for the cores, torch's {torch.get_num_threads()} threads make timings erratic "
              "(try --threads 1)")


def run_command(args, child_main, run_benchmark, format_text, format_markdown, finish=None) -> None:
    """The shared main of the benchmarks: a memory child, or the whole run with its reports."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.child:
        child_main(args)
        return
    start = time.perf_counter()
    _warn_if_busy()
    rows = run_benchmark(args)
    print()
    print(format_text(rows, args))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(format_markdown(rows, args))
        print(f"\nwrote {args.markdown}")
    if finish is not None:
        finish(rows, args)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


def main(argv: list[str] | None = None) -> None:
    run_command(parse_args(argv), child_main, run_benchmark, format_text, format_markdown)


if __name__ == "__main__":
    main()
