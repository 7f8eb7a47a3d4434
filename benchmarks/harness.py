"""What the benchmarks share: counted vector fields, problems and methods, timing in turns, peak
memory in a fresh subprocess, the table and report formats, and the command line.

Each benchmark is run as a script from the repository root (python benchmarks/NAME.py), which
puts this folder on sys.path; the test suite never imports these files.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

# ----------------------------------------------------------------------------------------------
# Vector fields and problems
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
        if not torch.compiler.is_compiling():  # (a changing number in a compiled graph recompiles it)
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


def single_threaded_jax() -> None:
    """XLA's CPU backend on one thread; before anything imports jax."""
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()


@functools.cache
def jax_x64():
    """jax, with float64 enabled (before any array is made)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def mlp_jax(layers, y, jnp):
    """MLPField in JAX (jnp = jax.numpy): layers = ((weight, bias), ...) of its Linear layers."""
    for weight, bias in layers[:-1]:
        y = jnp.tanh(y @ weight.T + bias)
    weight, bias = layers[-1]
    return y @ weight.T + bias


def jax_layers(field: MLPField, jnp) -> tuple:
    """The (weight, bias) of each Linear layer of an MLPField, as JAX arrays."""
    return tuple((jnp.asarray(m.weight.detach().numpy()), jnp.asarray(m.bias.detach().numpy()))
                 for m in field.net if isinstance(m, nn.Linear))


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

    def on(self, device: str) -> Problem:
        """This problem, moved to `device` (in place)."""
        self.func.to(device)
        self.y0 = self.y0.to(device).requires_grad_(True)
        self.t, self.target = self.t.to(device), self.target.to(device)
        return self


# ----------------------------------------------------------------------------------------------
# Methods: each solves a problem and returns (ys, physode's Stats or None), differentiably
# ----------------------------------------------------------------------------------------------


def physode_solve(problem, rtol: float, atol: float, *, method: str = "dopri5", gradient="aca",
                  options: dict | None = None):
    import physode

    solution = physode.solve(problem.func, problem.y0, problem.t, method=method, rtol=rtol, atol=atol,
                             gradient=gradient, options=options)
    return solution.ys, solution.stats


def torchdiffeq_odeint(problem, rtol: float, atol: float):
    from torchdiffeq import odeint

    return odeint(problem.func, problem.y0, problem.t, rtol=rtol, atol=atol, method="dopri5"), None


def torchdiffeq_adjoint(problem, rtol: float, atol: float):
    from torchdiffeq import odeint_adjoint

    return odeint_adjoint(problem.func, problem.y0, problem.t, rtol=rtol, atol=atol, method="dopri5"), None


def torchdiffeqpack_intervals(problem, rtol: float, atol: float, *, solver: str, options: dict):
    """TorchDiffEqPack's `solver` (odesolve_adjoint or odesolve_adjoint_sym12) returns only the end
    state, so several output times are solved interval by interval, each restarting its step-size
    search (h=None); it keeps times in float32."""
    solve = getattr(importlib.import_module("TorchDiffEqPack"), solver)
    times, ys = problem.t.tolist(), [problem.y0]
    for t0, t1 in zip(times, times[1:]):
        ys.append(solve(problem.func, ys[-1], options={**options, "t0": t0, "t1": t1, "h": None, "rtol": rtol,
                                                      "atol": atol}))
    return torch.stack(ys), None


@dataclass
class Run:
    """One forward+backward: the loss, the outputs, the flattened float64 gradient, the func calls
    and physode's Stats (None for the peers)."""

    loss: float
    outputs: Tensor
    grad: Tensor
    nfe_forward: int
    nfe_backward: int
    stats: object = None


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    solve: Callable[..., tuple[Tensor, object]]
    module: str  # what must import for the method to run

    def unavailable(self) -> str | None:
        try:
            importlib.import_module(self.module)
        except Exception as error:  # noqa: BLE001 - any import failure means "skip"
            return f"{self.module} does not import ({type(error).__name__}: {error})"
        return None

    def run(self, problem, rtol: float, atol: float) -> Run:
        """Forward, problem.loss, backward (torch.autograd.grad w.r.t. problem.inputs()). The
        evaluations are the calls Counted saw, or physode's own count where it reports Stats (the
        same calls; a compiled step's are not seen by Counted)."""
        inputs, tally = problem.inputs(), problem.func.tally
        tally.calls = 0
        ys, stats = self.solve(problem, rtol, atol)
        nfe_forward = tally.calls
        loss = problem.loss(ys)
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        flat = [(torch.zeros_like(x) if g is None else g).detach().reshape(-1) for g, x in zip(grads, inputs)]
        counted = hasattr(stats, "nfe")  # physode's Stats
        nfe = (stats.nfe, stats.nfe_backward) if counted else (nfe_forward, tally.calls - nfe_forward)
        return Run(loss.item(), ys.detach(), torch.cat(flat).double().cpu(), *nfe, stats)


@dataclass
class Row:
    """What was measured of one method on one case (a problem, a horizon, a scenario); None where
    it was not. `grad_error` is against a reference, `grad_diff` and `diff` against another method."""

    case: object
    method: str
    seconds: float | None = None
    nfe_forward: int | None = None
    nfe_backward: int | None = None
    steps: int | None = None
    rejected: int | None = None
    memory_mib: float | None = None
    grad_error: float | None = None
    grad_diff: float | None = None
    diff: float | None = None
    error: float | None = None
    notes: list[str] = field(default_factory=list)


def first_run(method: Method, problem, args, row: Row, warnings_as_notes: bool = False) -> Run | None:
    """The untimed first run: its nfe and steps go into the row; None, with a note, if it fails
    (a failing method is a result, not a crash); its warnings become notes if asked."""
    with warnings.catch_warnings(record=warnings_as_notes) as caught:
        if warnings_as_notes:
            warnings.simplefilter("always")
        try:
            run = method.run(problem, args.rtol, args.atol)
        except Exception as error:  # noqa: BLE001
            row.notes.append(f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}")
            return None
    for w in caught or []:
        row.notes.append(f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}")
    row.nfe_forward, row.nfe_backward = run.nfe_forward, run.nfe_backward
    if run.stats is not None:
        row.steps, row.rejected = run.stats.accepted, run.stats.rejected
    return run


def row_notes(rows: Sequence[Row], case: Callable[[object], str] = str) -> list[tuple[str, str]]:
    """(where, note) for every note, where = "<case> / <method>"."""
    return [(f"{case(r.case)} / {r.method}", note) for r in rows for note in r.notes]


def available(methods: Sequence[Method]) -> list[Method]:
    """The methods whose module imports; a note for each of the others."""
    for m in methods:
        if (why := m.unavailable()) is not None:
            print(f"note: skipping {m.name}: {why}")
    return [m for m in methods if m.unavailable() is None]


def relative(x: Tensor, ref: Tensor) -> float:
    return float((x - ref).norm() / ref.norm())

# ----------------------------------------------------------------------------------------------
# Time and memory
# ----------------------------------------------------------------------------------------------


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_run(method: Method, problem, args) -> float:
    """Wall time of one forward+backward, in seconds."""
    sync(args.device)
    start = time.perf_counter()
    method.run(problem, args.rtol, args.atol)
    sync(args.device)
    return time.perf_counter() - start


def time_in_turns(timed: list, args, collect: bool = False) -> None:
    """--repeats rounds that time each (row, method, problem) once in turn, so that a change of
    machine load hits all of them alike; each row's `seconds` becomes the median."""
    seconds = [[] for _ in timed]
    for _ in range(args.repeats):
        for (row, method, problem), times in zip(timed, seconds):
            times.append(timed_run(method, problem, args))
            if collect:
                gc.collect()
    for (row, _, _), times in zip(timed, seconds):
        row.seconds = statistics.median(times) if times else None


def proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Set this process's RSS high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return proc_status_kb("VmHWM") is not None
    except OSError:
        return False


def rss_bytes() -> int:
    kb = proc_status_kb("VmRSS")
    return kb * 1024 if kb is not None else ru_maxrss_bytes()


def ru_maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def peak_memory(method: Method, problem, warmup, args) -> dict:
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
    own_peak = reset_peak_rss()
    before = rss_bytes()
    method.run(problem, args.rtol, args.atol)
    if own_peak:
        return {"bytes": proc_status_kb("VmHWM") * 1024 - before, "how": "VmHWM - VmRSS"}
    return {"bytes": ru_maxrss_bytes() - before, "how": "ru_maxrss - RSS"}


def print_peak_memory(method: Method, problem, warmup, args) -> None:
    """What a memory child does: measure, and print the result as JSON on its last line."""
    print(json.dumps(peak_memory(method, problem, warmup, args)))


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
# Reports
# ----------------------------------------------------------------------------------------------


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@dataclass
class Table:
    """Cells under columns; the columns in `left` are left-aligned, the others right-aligned; a
    blank line separates rows whose `groups` key differs (text only)."""

    columns: tuple[str, ...]
    cells: list[tuple[str, ...]]
    left: tuple[int, ...]
    groups: list | None = None

    def text(self) -> list[str]:
        everything = [self.columns, *self.cells]
        widths = [max(len(c[i]) for c in everything) for i in range(len(self.columns))]

        def line(cells):
            return "  ".join(s.ljust(w) if i in self.left else s.rjust(w) for i, (s, w) in enumerate(zip(cells, widths)))

        out = [line(self.columns), "  ".join("-" * w for w in widths)]
        for i, cells in enumerate(self.cells):
            if i and self.groups is not None and self.groups[i] != self.groups[i - 1]:
                out.append("")
            out.append(line(cells))
        return out

    def markdown(self) -> list[str]:
        align = ["---" if i in self.left else "---:" for i in range(len(self.columns))]
        return [markdown_row(self.columns), markdown_row(align), *map(markdown_row, self.cells)]


def markdown_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def text_report(header: Sequence[str], table: Table, notes: Sequence[tuple[str, str]], title: str,
                summary: Sequence[str]) -> str:
    """Header lines, the table, its notes (key, note), then the summary lines under `title`."""
    out = [*header, "", *table.text(), *(f"  {key}: {note}" for key, note in notes), "", title, *summary]
    return "\n".join(out)


def markdown_report(settings: str, preamble: Sequence[str], table: Table, notes: Sequence[tuple[str, str]],
                    summary: Table) -> str:
    """The settings in italics, preamble lines, the table, its notes as a list, the summary table."""
    bullets = [f"- {key}: {note}" for key, note in notes]
    out = [f"_{settings}_", "", *preamble, *table.markdown(), "", *bullets, *([""] if bullets else []),
           *summary.markdown()]
    return "\n".join(out) + "\n"


def versions(args) -> str:
    return f"device {args.device}; torch {torch.__version__}, {torch.get_num_threads()} threads"

# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def parser(doc: str, quick: str, *, repeats: int, rtol: float, atol: float,
           threads: int | None = None) -> argparse.ArgumentParser:
    """The arguments every benchmark takes; `quick` describes its --quick smoke run."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"smoke run: {quick} (explicit flags still win)")
    p.add_argument("--repeats", type=int, default=repeats, help="timed repeats after the warm-up (median reported)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    default_threads = "torch's" if threads is None else threads
    p.add_argument("--threads", type=int, default=threads,
                   help=f"torch.set_num_threads for every method (default: {default_threads})")
    p.add_argument("--rtol", type=float, default=rtol)
    p.add_argument("--atol", type=float, default=atol)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", metavar="PATH", help="also write the table and its summary as markdown")
    p.add_argument("--child", help=argparse.SUPPRESS)  # a memory subprocess: what to measure
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None, quick: dict) -> argparse.Namespace:
    """Parse, with the --quick defaults where asked, and refuse CUDA where there is none."""
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        p.set_defaults(**quick)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    return args


def choices(p: argparse.ArgumentParser, flag: str, value: str, known) -> list[str]:
    """A comma-separated subset of `known`, or a parser error naming --flag."""
    values = [v.strip() for v in value.split(",") if v.strip()]
    unknown = sorted(set(values) - set(known))
    if unknown or not values:
        p.error(f"--{flag}: unknown {unknown}; choose from {', '.join(known)}")
    return values


def warn_if_busy() -> None:
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
    warn_if_busy()
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
