"""Irregular-series benchmark: the union-of-times grid against the per-series rescaled-time grid.

physode.series.integrate_series solves a batch of series observed at different times in one
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
mask explicitly: solve_series(grid="union") returns the solution at every union time for every
series, grid="rescaled" returns zeros where a series has no observation); gradients are taken with
respect to the MLP's parameters and y0. For each scenario and grid it reports:

    time        median wall time of one forward+backward over --repeats runs, after one warm-up run;
                the grids take turns in each round, as in gradients.py
    nfe         calls of the vector field in the forward and the backward pass (a counting wrapper)
    steps       accepted and rejected steps of the forward pass, from the Stats of the Solution that
                physode.series.solve_series returns; torchdiffeq does not report its steps ("-")
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

import copy
import time
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

import physode
from harness import (
    Counted, Method, Row, Table, available, choices, first_run, fmt, markdown_report, parse, parser, relative,
    row_notes, run_command, text_report, time_in_turns, versions,
)
from physode.series import solve_series

# ----------------------------------------------------------------------------------------------
# Problem
# ----------------------------------------------------------------------------------------------


class NeuralField(nn.Module):
    """dy/dt = MLP(y), ignoring t (which the rescaled grid passes per series, shape (series, 1))."""

    def __init__(self, dim: int, hidden: int):
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

    def masked(self, ys: Tensor) -> Tensor:
        return ys * self.observed[:, :, None].to(ys.dtype)

    def loss(self, ys: Tensor) -> Tensor:
        """The sum of squares at the observed entries."""
        return self.masked(ys).square().sum()

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
# Grids: each solves a scenario and returns (ys (series, T, dim), physode's Stats or None)
# ----------------------------------------------------------------------------------------------


def physode_grid(scenario: Scenario, rtol: float, atol: float, *, grid: str):
    func, start = scenario.func, scenario.start
    if grid == "union" and not scenario.common_start:
        func, start = Gated(func, start), start.min().expand_as(start)
    solution = solve_series(func, scenario.y0, scenario.times, scenario.observed, start=start, grid=grid,
                            method="dopri5", rtol=rtol, atol=atol, gradient="aca")
    return solution.ys, solution.stats


def torchdiffeq_union(scenario: Scenario, rtol: float, atol: float):
    from torchdiffeq import odeint

    start = scenario.start[:1]
    t = torch.cat([start, scenario.times]) if bool(start[0] < scenario.times[0]) else scenario.times
    ys = odeint(scenario.func, scenario.y0, t, rtol=rtol, atol=atol, method="dopri5")
    return ys[len(t) - len(scenario.times):].movedim(0, 1), None


GRIDS: dict[str, Method] = {g.name: g for g in (
    Method("union", "physode union", partial(physode_grid, grid="union"), "physode"),
    Method("rescaled", "physode rescaled", partial(physode_grid, grid="rescaled"), "physode"),
    Method("torchdiffeq", "torchdiffeq union", torchdiffeq_union, "torchdiffeq"),
)}
NEEDS_COMMON_START = ("torchdiffeq",)

# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def measure_scenario(name: str, args) -> tuple[list[Row], Scenario]:
    """Warm-up run of every grid (nfe, steps, outputs, gradient), then --repeats rounds timing
    each grid once in turn."""
    scenario = make_scenario(name, args)
    if not args.no_reference:
        scenario.reference = reference_solution(scenario, args)
    rows, timed, results = [], [], {}
    for grid in args.grid_methods:
        if grid.name in NEEDS_COMMON_START and not scenario.common_start:
            continue
        row = Row(name, grid.name)
        rows.append(row)
        run = first_run(grid, scenario, args, row)
        if run is None:
            continue
        outputs = scenario.masked(run.outputs)
        if scenario.reference is not None:
            row.error = float((outputs.double() - scenario.reference).abs().max())
        results[grid.name] = (outputs, run.grad)
        timed.append((row, grid, scenario))
    union = results.get("union")
    for row in rows:
        if union is not None and row.method in results:
            row.diff = float((results[row.method][0] - union[0]).abs().max())
            row.grad_diff = relative(results[row.method][1], union[1])
    time_in_turns(timed, args)
    return rows, scenario


def run_benchmark(args) -> list[Row]:
    args.grid_methods = available([GRIDS[name] for name in args.grids])
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


def table(rows: list[Row]) -> Table:
    cells = [
        (r.case, GRIDS[r.method].label, fmt(r.seconds and 1e3 * r.seconds, ".1f"), fmt(r.nfe_forward, "d"),
         fmt(r.nfe_backward, "d"), fmt(r.steps, "d"), fmt(r.rejected, "d"),
         "-" if r.method == "union" else fmt(r.diff, ".1e"), "-" if r.method == "union" else fmt(r.grad_diff, ".1e"),
         fmt(r.error, ".1e"))
        for r in rows
    ]
    return Table(COLUMNS, cells, left=(0, 1), groups=[r.case for r in rows])


def ratio_lines(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(scenario, description, value) for rescaled / union and union / torchdiffeq time."""
    by_key = {(r.case, r.method): r for r in rows}
    lines = []
    for scenario in dict.fromkeys(r.case for r in rows):
        for num, den in (("rescaled", "union"), ("union", "torchdiffeq")):
            a, b = by_key.get((scenario, num)), by_key.get((scenario, den))
            if a is None or b is None or a.seconds is None or b.seconds is None:
                continue
            lines.append((scenario, f"{num} time / {den} time", f"{a.seconds / b.seconds:.3g}"))
    return lines


def format_text(rows: list[Row], args) -> str:
    summary = [f"  {s:<8} {text:<30} {value:>7}" for s, text, value in ratio_lines(rows)]
    return text_report([_settings(args), *getattr(args, "scenario_lines", [])], table(rows), row_notes(rows), "ratios:",
                       summary)


def format_markdown(rows: list[Row], args) -> str:
    preamble = [*[f"- {line}" for line in getattr(args, "scenario_lines", [])], ""]
    summary = Table(("scenario", "ratio", "value"), ratio_lines(rows), left=(0, 1))
    return markdown_report(_settings(args), preamble, table(rows), row_notes(rows), summary)


def _settings(args) -> str:
    reference = "none" if args.no_reference else f"per series, float64, rtol=atol={args.ref_tol:g}"
    return (
        f"dopri5, gradient aca, rtol={args.rtol:g}, atol={args.atol:g}; dy/dt = MLP(y), {args.dim} -> {args.hidden} -> "
        f"{args.hidden} -> {args.dim} tanh, final_scale 1; {args.series} series x {args.observations} times, "
        f"{args.dtype}; median of {args.repeats}; reference {reference}; {versions(args)}"
    )

# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

QUICK = {"series": 8, "observations": 5, "repeats": 1}


def parse_args(argv: list[str] | None = None):
    p = parser(__doc__, "8 series of 5 times, 1 repeat", repeats=5, rtol=1e-5, atol=1e-7)
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--grids", default=",".join(GRIDS), help=f"comma-separated subset of {','.join(GRIDS)}")
    p.add_argument("--ref-tol", type=float, default=1e-10, help="rtol = atol of the float64 per-series reference")
    p.add_argument("--no-reference", action="store_true", help="skip the per-series reference solves")
    p.add_argument("--dim", type=int, default=15, help="state dimension")
    p.add_argument("--hidden", type=int, default=100, help="MLP hidden width (two hidden layers)")
    p.add_argument("--series", type=int, default=50, help="series in the batch")
    p.add_argument("--observations", type=int, default=20, help="observation times per series")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parse(p, argv, QUICK)
    args.scenarios = choices(p, "scenarios", args.scenarios, SCENARIOS)
    args.grids = choices(p, "grids", args.grids, GRIDS)
    if args.series < 1 or args.observations < 1:
        p.error("--series and --observations must be at least 1")
    return args


if __name__ == "__main__":
    run_command(parse_args(), None, run_benchmark, format_text, format_markdown)
