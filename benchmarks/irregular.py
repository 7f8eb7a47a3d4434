"""Irregular-series benchmark: the union-of-times grid against the per-series rescaled-time grid.

physode.timegrid.integrate_series solves a batch of series observed at different times in one
batched solve, on one of two grids:

    union       one solve over the union of every series' observation times, from a common start:
                every series takes every step, over the span of the whole batch (what Rubanova et
                al.'s torchdiffeq code does for latent ODEs on irregular series)
    rescaled    s in [0, 1], t_i(s) = a_i + s (b_i - a_i) per series: dy_i/ds = (b_i - a_i) f(t_i, y_i),
                one solve to the union of the s values; every series runs over its own span only

and this measures which is faster when the series' time spans differ. A third row solves the union
grid with torchdiffeq.odeint (dopri5, plain backpropagation through its solver), as a reference.

Problem: a neural vector field dy/dt = MLP(y), MLP = physode.nn.MLP 15 -> 100 -> 100 -> 15 with tanh,
default initialisation with final_scale = 1 (so that the dynamics are not near-trivial); a batch of
50 series (--series), y0 ~ N(0, 1) in 15 dimensions, each series observed at 20 times (--observations)
drawn uniformly in its own span [a_i, b_i] and starting at a_i; float32 (--dtype). Scenarios:

    equal       a_i = 0, b_i = 1 (control: both grids integrate over [0, 1])
    ends        a_i = 0, b_i log-uniform in [0.1, 10] (spans differing by up to 100x)
    offsets     a_i uniform in [0, 50], b_i = a_i + 1 (same length, different offsets). The union grid
                needs a common start, so its row integrates every series from min a_i with the field
                gated: f(t, y) * (t >= a_i) (each series held at y0 until its own start); this gate is
                written here (Gated), not in physode. torchdiffeq is not run on this scenario.

Every solve: dopri5, gradient="aca" for physode, rtol = 1e-5, atol = 1e-7 (--rtol, --atol). The loss is
the sum of squares of the outputs at the observed entries (the outputs are masked by the observation
mask explicitly: integrate_series(grid="union") returns the solution at every union time for every
series, grid="rescaled" returns zeros where a series has no observation); gradients are taken with
respect to the MLP's parameters and y0. For each scenario and grid it reports:

    time        median wall time of one forward+backward over --repeats runs, after one warm-up run;
                the grids take turns in each round, as in gradients.py
    nfe         calls of the vector field in the forward and the backward pass (a counting wrapper)
    steps       accepted and rejected steps of the forward pass, from physode's Stats (recorded in
                the warm-up run by routing integrate_series' call of physode.odeint through
                physode.solve); torchdiffeq does not report its steps ("-")
    y diff      max |y - y_union| over the observed entries (y diff vs union), and the relative L2
                distance of the gradient from the union grid's (grad diff vs union)
    y err       max |y - y_ref| over the observed entries against an independent reference: each
                series solved on its own, from its own start to its own times, by physode.odeint
                (dopri5, float64, rtol = atol = --ref-tol, 1e-10); --no-reference skips it

and the ratios rescaled time / union time (below 1: rescaled is faster) and union time / torchdiffeq
time.

Run from the repository root:

    python benchmarks/irregular.py --threads 1                 # default run, about 20 s on 2 cores
    python benchmarks/irregular.py --quick                     # smoke run: small batch, 1 repeat
    python benchmarks/irregular.py --dtype float64 --rtol 1e-7 --atol 1e-9 --markdown results.md

See --help for the sizes. The test suite never imports this file.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for the shared helpers of gradients.py

from gradients import Counted, _fmt, _relative, run_command, timed_run

# ----------------------------------------------------------------------------------------------
# Problem
# ----------------------------------------------------------------------------------------------


class NeuralField(nn.Module):
    """dy/dt = MLP(y), ignoring t (which the rescaled grid passes per series, shape (series, 1))."""

    def __init__(self, dim: int, hidden: int):
        import physode

        super().__init__()
        self.mlp = physode.MLP(dim, dim, hidden=(hidden, hidden), activation="tanh", final_scale=1.0)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.mlp(y)


class Gated(nn.Module):
    """f(t, y) * (t >= start_i): series i stays at its initial state until its own start, so that
    a solve from the earliest start on one common time axis treats every series as starting at
    its own a_i. The gate is a jump of the vector field at each a_i inside the span, which the
    step-size control must find."""

    def __init__(self, func: nn.Module, start: Tensor):
        super().__init__()
        self.func = func
        self.register_buffer("start", start.reshape(-1, 1))

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return self.func(t, y) * (t >= self.start).to(y.dtype)


@dataclass
class Scenario:
    """A batch of series on the union of their times: times (T,), observed (series, T) bool, each
    series' start (series,), its observation times (series, n) and y0 (series, dim) (a leaf)."""

    name: str
    description: str
    func: Counted
    y0: Tensor
    times: Tensor
    observed: Tensor
    start: Tensor
    series_times: Tensor
    # filled by the reference solve
    reference: Tensor | None = None

    def inputs(self) -> list[Tensor]:
        return [*self.func.parameters(), self.y0]

    @property
    def common_start(self) -> bool:
        return bool((self.start == self.start[0]).all())


SCENARIOS = {
    "equal": "a=0, b=1",
    "ends": "a=0, b log-uniform in [0.1, 10]",
    "offsets": "a uniform in [0, 50], b=a+1",
}


def spans(name: str, series: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(a, b) per series, float64."""
    if name == "equal":
        return torch.zeros(series, dtype=torch.float64), torch.ones(series, dtype=torch.float64)
    if name == "ends":
        u = torch.rand(series, generator=generator, dtype=torch.float64)
        return torch.zeros(series, dtype=torch.float64), 10.0 ** (2 * u - 1)
    if name == "offsets":
        a = 50 * torch.rand(series, generator=generator, dtype=torch.float64)
        return a, a + 1
    raise ValueError(name)


def make_scenario(name: str, args) -> Scenario:
    """The same field and y0 (--seed) in every scenario; observation times seeded per scenario."""
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    func = Counted(NeuralField(args.dim, args.hidden)).to(dtype=dtype, device=args.device)
    generator = torch.Generator().manual_seed(args.seed)
    y0 = torch.randn(args.series, args.dim, generator=generator, dtype=torch.float64)
    generator.manual_seed(args.seed + 1 + list(SCENARIOS).index(name))
    a, b = spans(name, args.series, generator)
    u = torch.rand(args.series, args.observations, generator=generator, dtype=torch.float64).sort(dim=1).values
    series_times = (a[:, None] + u * (b - a)[:, None]).to(dtype)
    start = a.to(dtype)
    if bool((series_times[:, 0] <= start).any()):  # a draw of u = 0, or rounding onto a
        raise ValueError(f"{name}: an observation at a series' start; try another --seed")
    times = torch.unique(series_times)
    observed = torch.zeros(args.series, len(times), dtype=torch.bool)
    observed[torch.arange(args.series)[:, None], torch.searchsorted(times, series_times)] = True
    device = args.device
    return Scenario(name, SCENARIOS[name], func, y0.to(dtype=dtype, device=device).requires_grad_(True),
                    times.to(device), observed.to(device), start.to(device), series_times.to(device))


def reference_solution(scenario: Scenario, args) -> Tensor:
    """(series, T, dim) float64, zero where not observed: each series solved on its own from its
    start to its own observation times (no timegrid code involved)."""
    import physode

    func = copy.deepcopy(scenario.func.vector_field).double()
    out = torch.zeros(*scenario.observed.shape, args.dim, dtype=torch.float64, device=args.device)
    with torch.no_grad():
        for i in range(args.series):
            index = torch.nonzero(scenario.observed[i]).flatten()
            t = torch.cat([scenario.start[i:i + 1], scenario.times[index]]).double()
            ys = physode.odeint(func, scenario.y0[i].detach().double(), t, method="dopri5", rtol=args.ref_tol,
                                atol=args.ref_tol, gradient="direct")
            out[i, index] = ys[1:]
    return out

# ----------------------------------------------------------------------------------------------
# Grids
# ----------------------------------------------------------------------------------------------


class StatsRecorder:
    """While active, integrate_series' call of physode.odeint goes through physode.solve and the
    Solution's stats (forward, and backward once it has run) are kept in `stats`. integrate_series
    imports odeint from physode.odeint when called, so replacing that module attribute reaches it;
    used only in the untimed warm-up run."""

    def __init__(self):
        self.module = importlib.import_module("physode.odeint")
        self.stats = None

    def __enter__(self):
        self.original = self.module.odeint

        def odeint(func, y0, t, **kwargs):
            solution = self.module.solve(func, y0, t, **kwargs)
            self.stats = solution.stats
            return solution.ys

        self.module.odeint = odeint
        return self

    def __exit__(self, *exc) -> None:
        self.module.odeint = self.original


@dataclass
class Result:
    """One forward+backward: masked outputs (series, T, dim), the flattened gradient, nfe."""

    outputs: Tensor
    grad: Tensor
    nfe_forward: int
    nfe_backward: int


def _physode_grid(scenario: Scenario, rtol: float, atol: float, *, grid: str) -> Tensor:
    from physode.timegrid import integrate_series

    func, start = scenario.func, scenario.start
    if grid == "union" and not scenario.common_start:
        func, start = Gated(func, start), start.min().expand_as(start)
    return integrate_series(func, scenario.y0, scenario.times, scenario.observed, start=start, grid=grid,
                            method="dopri5", rtol=rtol, atol=atol, gradient="aca")


def _torchdiffeq_union(scenario: Scenario, rtol: float, atol: float) -> Tensor:
    from torchdiffeq import odeint

    start = scenario.start[:1]
    t = torch.cat([start, scenario.times]) if bool(start[0] < scenario.times[0]) else scenario.times
    ys = odeint(scenario.func, scenario.y0, t, rtol=rtol, atol=atol, method="dopri5")
    return ys[len(t) - len(scenario.times):].movedim(0, 1)


@dataclass(frozen=True)
class Grid:
    name: str
    label: str
    solve: Callable[..., Tensor]
    module: str
    needs_common_start: bool = False

    def applies(self, scenario: Scenario) -> bool:
        return scenario.common_start or not self.needs_common_start

    def run(self, scenario: Scenario, rtol: float, atol: float) -> Result:
        """Forward, loss (sum of squares at the observed entries), backward."""
        tally, inputs = scenario.func.tally, scenario.inputs()
        tally.calls = 0
        ys = self.solve(scenario, rtol, atol)
        nfe_forward = tally.calls
        ys = ys * scenario.observed[:, :, None].to(ys.dtype)
        loss = ys.square().sum()
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
        flat = [(torch.zeros_like(x) if g is None else g).detach().reshape(-1) for g, x in zip(grads, inputs)]
        return Result(ys.detach(), torch.cat(flat).double().cpu(), nfe_forward, tally.calls - nfe_forward)


def _partial(fn, **kwargs):
    return lambda scenario, rtol, atol: fn(scenario, rtol, atol, **kwargs)


GRIDS: dict[str, Grid] = {g.name: g for g in (
    Grid("union", "physode union", _partial(_physode_grid, grid="union"), "physode"),
    Grid("rescaled", "physode rescaled", _partial(_physode_grid, grid="rescaled"), "physode"),
    Grid("torchdiffeq", "torchdiffeq union", _torchdiffeq_union, "torchdiffeq", needs_common_start=True),
)}

# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    grid: str
    seconds: float | None = None
    nfe_forward: int | None = None
    nfe_backward: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    diff: float | None = None
    grad_diff: float | None = None
    error: float | None = None
    notes: list[str] = field(default_factory=list)


def measure_scenario(name: str, args) -> tuple[list[Row], Scenario]:
    """Warm-up run of every grid (nfe, steps, outputs, gradient), then --repeats rounds timing
    each grid once in turn."""
    scenario = make_scenario(name, args)
    if not args.no_reference:
        scenario.reference = reference_solution(scenario, args)
    rows, timed, results = [], [], {}
    for grid in (GRIDS[g] for g in args.grids):
        if not grid.applies(scenario):
            continue
        row = Row(name, grid.name)
        rows.append(row)
        try:
            with StatsRecorder() as recorder:
                result = grid.run(scenario, args.rtol, args.atol)
        except Exception as error:  # noqa: BLE001 - a failing grid is a result, not a crash
            row.notes.append(f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160]}")
            continue
        row.nfe_forward, row.nfe_backward = result.nfe_forward, result.nfe_backward
        if grid.module == "physode" and recorder.stats is not None:
            row.accepted, row.rejected = recorder.stats.accepted, recorder.stats.rejected
        if scenario.reference is not None:
            row.error = float((result.outputs.double() - scenario.reference).abs().max())
        results[grid.name] = result
        timed.append((row, grid, []))
    union = results.get("union")
    for row in rows:
        if union is not None and row.grid in results:
            row.diff = float((results[row.grid].outputs - union.outputs).abs().max())
            row.grad_diff = _relative(results[row.grid].grad, union.grad)
    for _ in range(args.repeats):
        for row, grid, seconds in timed:
            seconds.append(timed_run(grid, scenario, args))
    for row, grid, seconds in timed:
        row.seconds = statistics.median(seconds)
    return rows, scenario


def run_benchmark(args) -> list[Row]:
    for name in args.grids:
        try:
            importlib.import_module(GRIDS[name].module)
        except Exception as error:  # noqa: BLE001 - any import failure means "skip"
            print(f"note: skipping {name}: {GRIDS[name].module} does not import ({type(error).__name__}: {error})")
            args.grids = [g for g in args.grids if g != name]
    rows = []
    args.scenario_lines = []
    for name in args.scenarios:
        start = time.perf_counter()
        scenario_rows, scenario = measure_scenario(name, args)
        rows += scenario_rows
        lengths = (scenario.series_times[:, -1] - scenario.start).double()
        line = (f"{name}: {scenario.description}; union grid {len(scenario.times)} times over "
                f"[{float(scenario.start.min()):.3g}, {float(scenario.times[-1]):.3g}]; per-series spans "
                f"(a to last observation) {float(lengths.min()):.3g} to {float(lengths.max()):.3g}")
        if scenario.reference is not None:
            line += f"; max |y_ref| {float(scenario.reference.abs().max()):.3g}"
        args.scenario_lines.append(line)
        print(f"{name}: measured in {time.perf_counter() - start:.1f} s", flush=True)
    return rows

# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

COLUMNS = ("scenario", "grid", "time [ms]", "nfe fwd", "nfe bwd", "steps", "rejected", "y diff vs union",
           "grad diff vs union", "y err vs ref")


def table_cells(rows: list[Row]) -> list[tuple[str, ...]]:
    return [
        (r.scenario, GRIDS[r.grid].label, _fmt(r.seconds and 1e3 * r.seconds, ".1f"), _fmt(r.nfe_forward, "d"),
         _fmt(r.nfe_backward, "d"), _fmt(r.accepted, "d"), _fmt(r.rejected, "d"),
         "-" if r.grid == "union" else _fmt(r.diff, ".1e"), "-" if r.grid == "union" else _fmt(r.grad_diff, ".1e"),
         _fmt(r.error, ".1e"))
        for r in rows
    ]


def ratio_lines(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(scenario, description, value) for rescaled / union and union / torchdiffeq time."""
    by_key = {(r.scenario, r.grid): r for r in rows}
    lines = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        for num, den in (("rescaled", "union"), ("union", "torchdiffeq")):
            a, b = by_key.get((scenario, num)), by_key.get((scenario, den))
            if a is None or b is None or a.seconds is None or b.seconds is None:
                continue
            lines.append((scenario, f"{num} time / {den} time", f"{a.seconds / b.seconds:.3g}"))
    return lines


def format_text(rows: list[Row], args) -> str:
    cells = [COLUMNS, *table_cells(rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]

    def line(c):
        return "  ".join(s.ljust(w) if i < 2 else s.rjust(w) for i, (s, w) in enumerate(zip(c, widths)))

    out = [_settings(args), *getattr(args, "scenario_lines", []), "", line(cells[0]),
           "  ".join("-" * w for w in widths)]
    for i, (row, c) in enumerate(zip(rows, cells[1:])):
        if i and row.scenario != rows[i - 1].scenario:
            out.append("")
        out.append(line(c))
    out += [f"  {r.scenario} / {r.grid}: {note}" for r in rows for note in r.notes]
    out += ["", "ratios:"]
    out += [f"  {s:<8} {text:<30} {value:>7}" for s, text, value in ratio_lines(rows)]
    return "\n".join(out)


def format_markdown(rows: list[Row], args) -> str:
    def row(cells):
        return "| " + " | ".join(cells) + " |"

    out = [f"_{_settings(args)}_", "", *[f"- {line}" for line in getattr(args, "scenario_lines", [])], "",
           row(COLUMNS), row(["---"] * 2 + ["---:"] * (len(COLUMNS) - 2))]
    out += [row(c) for c in table_cells(rows)]
    notes = [f"- {r.scenario} / {r.grid}: {note}" for r in rows for note in r.notes]
    out += ["", *notes, *([""] if notes else [])]
    out += [row(("scenario", "ratio", "value")), row(("---", "---", "---:"))]
    out += [row(r) for r in ratio_lines(rows)]
    return "\n".join(out) + "\n"


def _settings(args) -> str:
    reference = "none" if args.no_reference else f"per series, float64, rtol=atol={args.ref_tol:g}"
    return (
        f"dopri5, gradient aca, rtol={args.rtol:g}, atol={args.atol:g}; dy/dt = MLP(y), {args.dim} -> {args.hidden} -> "
        f"{args.hidden} -> {args.dim} tanh, final_scale 1; {args.series} series x {args.observations} times, "
        f"{args.dtype}; median of {args.repeats}; reference {reference}; device {args.device}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

QUICK = {"series": 8, "observations": 5, "repeats": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 8 series of 5 times, 1 repeat (explicit flags still win)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--grids", default=",".join(GRIDS), help=f"comma-separated subset of {','.join(GRIDS)}")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats after the warm-up (median reported)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--atol", type=float, default=1e-7)
    p.add_argument("--ref-tol", type=float, default=1e-10, help="rtol = atol of the float64 per-series reference")
    p.add_argument("--no-reference", action="store_true", help="skip the per-series reference solves")
    p.add_argument("--dim", type=int, default=15, help="state dimension")
    p.add_argument("--hidden", type=int, default=100, help="MLP hidden width (two hidden layers)")
    p.add_argument("--series", type=int, default=50, help="series in the batch")
    p.add_argument("--observations", type=int, default=20, help="observation times per series")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", metavar="PATH", help="also write the table and ratios as markdown")
    p.set_defaults(child=None)  # run_command's memory-child hook; this benchmark has none
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        p.set_defaults(**QUICK)
    args = p.parse_args(argv)
    for name, known in (("scenarios", SCENARIOS), ("grids", GRIDS)):
        values = [v.strip() for v in getattr(args, name).split(",") if v.strip()]
        unknown = sorted(set(values) - set(known))
        if unknown or not values:
            p.error(f"--{name}: unknown {unknown}; choose from {', '.join(known)}")
        setattr(args, name, values)
    if args.repeats < 1 or args.series < 1 or args.observations < 1:
        p.error("--repeats, --series and --observations must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    return args


def main(argv: list[str] | None = None) -> None:
    run_command(parse_args(argv), None, run_benchmark, format_text, format_markdown)


if __name__ == "__main__":
    main()
