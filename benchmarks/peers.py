"""Peers: physode against torchdiffeq, torchode and diffrax (JAX), side by side in one process.

Every method solves dy/dt = f(y) with dopri5 at rtol = atol = the problem's tolerance and takes the
gradient of the mean square distance of the outputs after t0 to a fixed target with respect to the
parameters of f and y0. Problems (seeded; diffrax gets the very same weights, initial states and
targets, copied from the torch tensors):

    mlp-16           f = MLP, D = 16, hidden 64, batch 256, t in [0, 1], 10 output times, tol 1e-5, float32
    mlp-32           f = MLP, D = 32, hidden 128, batch 512, t in [0, 2], 10 output times, tol 1e-5, float32
    mlp-4            f = MLP, D = 4, hidden 32, batch 1, t in [0, 10], 50 output times, tol 1e-6, float32
    three-body       Newtonian gravity (G = 1) of three bodies in 3-D, masses (0.8, 1.3, 1.0) (parameters
                     of f), state 18 (positions, then velocities), batch 1, t in [0, 1], 101 output times,
                     tol 1e-8, float64. The start is that of the figure-eight orbit of equal masses,
                     with z = +-0.1 added to two of the positions and velocities; with these masses
                     the bodies stay at least 0.66 apart.
    three-body-4096  the same for 4,096 systems: the first starts there, the others from that start
                     plus 0.01 N(0, 1) in every component

The MLP is Linear(D, h)-Tanh-Linear(h, h)-Tanh-Linear(h, D) (harness.MLPField) with torch's default
initialisation, y0 and the target N(0, 1); the output times are evenly spaced and include t0.
Methods:

    physode-aca              physode.solve(gradient="aca")
    physode-direct           physode.solve(gradient="direct")
    physode-aca-compiled     the same with options={"compile": True}
    physode-direct-compiled
    torchdiffeq              torchdiffeq.odeint, backpropagating through its solver
    torchdiffeq-adjoint      torchdiffeq.odeint_adjoint
    torchode                 torchode.AutoDiffAdjoint(Dopri5, IntegralController), backpropagating
                             through its solver, eager (neither scripted nor compiled). It controls
                             the step of every batch element on its own (each its own error norm and
                             step size; the batch moves in lock-step, every call of f evaluates all of
                             it); the others take one step for the whole batch, with the root mean
                             square over every component as the error norm.
    diffrax                  diffrax.diffeqsolve(Dopri5, PIDController(rtol, atol) (an I controller),
                             SaveAt(ts=t)) with its default adjoint (RecursiveCheckpointAdjoint) and
                             max_steps (4096); the loss and its gradient by jax.value_and_grad under
                             jax.jit; float64 enabled (jax_enable_x64), the float32 problems in float32

A method whose library does not import, or that fails (the compiled methods where physode does not
take the option), is "n/a", with the reason once under the table. For each problem and method:

    time       median wall time of one forward+backward over --repeats runs, after --warmups untimed
               runs (which compile diffrax and the compiled methods); the methods take turns in each
               round, so that a change of load hits all alike
    /diffrax   time over diffrax's, and /aca over physode-aca's
    nfe        evaluations of f in the forward solve. The torch libraries: calls of f counted by a
               wrapper (harness.Counted) from the start of the solve to the start of the backward pass
               (physode's Stats.nfe and torchode's n_f_evals count the same calls). dopri5 reuses a
               step's last stage as the next one's first, also after a rejection, so each of them
               spends 2 evaluations on the initial step size and 6 per attempted step. diffrax runs
               a compiled loop, so its count is derived from its stats: 6 num_steps + 1, that is 6
               per attempted step and 1 for the first stage of the first step (one more for each
               rejected attempt before the first accepted step). Its initial step size costs
               nothing: diffrax 0.7 hands PIDController a wrapped term, for which it falls back to
               a first step of 0.01 without evaluating f (calls of f counted with
               jax.debug.callback confirm the count).
    steps      accepted/rejected steps where the library reports them: physode (Stats), torchode
               (n_accepted and n_steps of the batch element that took the most) and diffrax
               (num_accepted_steps, num_rejected_steps)
    error      max |y - y_ref| over every output time and component, y_ref from scipy's DOP853 at
               rtol = atol = 1e-13 in float64 (work_precision.reference), so that fewer evaluations
               are not bought with a larger error

and, under the table, each method's time over diffrax's, the geometric mean over the problems.
--threads (default 1) sets torch.set_num_threads; with 1, XLA's CPU backend is made single-threaded
too (XLA_FLAGS=--xla_cpu_multi_thread_eigen=false, set before jax is imported), with any other value
JAX keeps its own default. --rtol and --atol replace every problem's tolerance. CPU only.

Run from the repository root (the peers: pip install -e .[bench]):

    python benchmarks/peers.py                     # every problem and method, 7 repeats, 1 thread
    python benchmarks/peers.py --quick             # smoke run: batch <= 16, 1 repeat, 1 warm-up
    python benchmarks/peers.py --problems mlp-4,three-body --methods physode-aca,torchdiffeq,diffrax
    python benchmarks/peers.py --repeats 15 --markdown peers.md

The test suite never imports this file.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from harness import (
    Counted,
    Method,
    MLPField,
    jax_layers,
    jax_x64,
    mlp_jax,
    single_threaded_jax,
    Problem,
    Row,
    Run,
    Table,
    choices,
    first_run,
    fmt,
    markdown_report,
    parse,
    parser,
    physode_solve,
    run_command,
    text_report,
    time_in_turns,
    torchdiffeq_adjoint,
    torchdiffeq_odeint,
    versions,
)
from torch import Tensor, nn
from work_precision import reference

F64 = torch.float64
QUICK_BATCH = 16

# ----------------------------------------------------------------------------------------------
# Problems
# ----------------------------------------------------------------------------------------------


def gravity(masses, y, xp):
    """dy/dt of three bodies, y = (positions, velocities), each 3 x 3 flattened, in the array library
    xp (torch or jax.numpy): d(r_i)/dt = v_i, d(v_i)/dt = sum_j m_j (r_j - r_i) / |r_j - r_i|^3."""
    r = y[..., :9].reshape(*y.shape[:-1], 3, 3)
    d = r[..., None, :, :] - r[..., :, None, :]  # d[..., i, j, :] = r_j - r_i
    squared = (d**2).sum(-1)
    inverse_cube = xp.where(squared > 0, squared, 1) ** -1.5  # j = i, where d = 0, adds nothing
    a = (masses[:, None] * d * inverse_cube[..., None]).sum(-2)
    return xp.concatenate([y[..., 9:], a.reshape(*y.shape[:-1], 9)], -1)


class ThreeBody(nn.Module):
    def __init__(self, masses: Tensor):
        super().__init__()
        self.masses = nn.Parameter(masses)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        return gravity(self.masses, y, torch)


# the start of the figure-eight orbit of three equal masses (Chenciner and Montgomery), out of its plane
START = torch.tensor([0.97000436, -0.24308753, 0.1, -0.97000436, 0.24308753, -0.1, 0.0, 0.0, 0.0,
                      0.46620368, 0.43236573, 0.1, 0.46620368, 0.43236573, -0.1, -0.93240737, -0.86473146, 0.0],
                     dtype=F64)


def batch_size(batch: int, args) -> int:
    return min(batch, QUICK_BATCH) if args.quick else batch


def mlp(dim: int, hidden: int, batch: int, horizon: float, times: int, args) -> Problem:
    torch.manual_seed(args.seed)
    batch = batch_size(batch, args)
    func = Counted(MLPField(dim, hidden))
    y0 = torch.randn(batch, dim).requires_grad_(True)
    return Problem("mlp", func, y0, torch.linspace(0, horizon, times), torch.randn(times - 1, batch, dim))


def three_body(batch: int, args) -> Problem:
    generator = torch.Generator().manual_seed(args.seed)
    batch = batch_size(batch, args)
    y0 = START.repeat(batch, 1)
    y0[1:] += 0.01 * torch.randn(batch - 1, 18, dtype=F64, generator=generator)
    t = torch.linspace(0, 1, 101, dtype=F64)
    target = torch.randn(len(t) - 1, batch, 18, dtype=F64, generator=generator)
    func = Counted(ThreeBody(torch.tensor([0.8, 1.3, 1.0], dtype=F64)))
    return Problem("three-body", func, y0.requires_grad_(True), t, target)


# name: (build(args) -> Problem, rtol = atol)
PROBLEMS: dict[str, tuple[Callable[..., Problem], float]] = {
    "mlp-16": (partial(mlp, 16, 64, 256, 1.0, 10), 1e-5),
    "mlp-32": (partial(mlp, 32, 128, 512, 2.0, 10), 1e-5),
    "mlp-4": (partial(mlp, 4, 32, 1, 10.0, 50), 1e-6),
    "three-body": (partial(three_body, 1), 1e-8),
    "three-body-4096": (partial(three_body, 4096), 1e-8),
}

# ----------------------------------------------------------------------------------------------
# The problems in JAX
# ----------------------------------------------------------------------------------------------


def mlp_x64(layers, y):
    return mlp_jax(layers, y, jax_x64().numpy)


def gravity_jax(masses, y):
    return gravity(masses, y, jax_x64().numpy)


@dataclass
class JaxProblem:
    """A Problem in JAX arrays: dy/dt = field(params, y)."""

    field: Callable
    params: object
    y0: object
    t: object
    target: object


def to_jax(problem: Problem) -> JaxProblem:
    jnp = jax_x64().numpy

    def array(x: Tensor):
        return jnp.asarray(x.detach().numpy())

    module = problem.func.vector_field
    if isinstance(module, MLPField):
        field, params = mlp_x64, jax_layers(module, jnp)
    else:
        field, params = gravity_jax, array(module.masses)
    return JaxProblem(field, params, array(problem.y0), array(problem.t), array(problem.target))

# ----------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------


@dataclass
class Steps:
    """Accepted and rejected steps of a peer (named as in physode's Stats)."""

    accepted: int
    rejected: int


def torchode_solve(problem: Problem, rtol: float, atol: float):
    import torchode

    term = torchode.ODETerm(problem.func)
    solver = torchode.AutoDiffAdjoint(torchode.Dopri5(term=term), torchode.IntegralController(atol, rtol, term=term))
    t_eval = problem.t.expand(len(problem.y0), -1)
    solution = solver.solve(torchode.InitialValueProblem(y0=problem.y0, t_eval=t_eval))
    attempted, accepted = solution.stats["n_steps"], solution.stats["n_accepted"]
    most = int(attempted.argmax())
    return solution.ys.transpose(0, 1), Steps(int(accepted[most]), int(attempted[most] - accepted[most]))


@functools.cache
def diffrax_loss_and_grad():
    """jit(value_and_grad) of the loss of a diffrax solve, w.r.t. (params, y0); `field`, `rtol` and
    `atol` are static (one compilation each, and per shape)."""
    jax = jax_x64()
    import diffrax

    def loss(params, y0, t, target, field, rtol, atol):
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda s, y, args: field(args, y)), diffrax.Dopri5(), t[0], t[-1], None, y0, args=params,
            saveat=diffrax.SaveAt(ts=t), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        )
        stats = {key: solution.stats[key] for key in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
        return ((solution.ys[1:] - target) ** 2).mean(), (solution.ys, stats)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), static_argnames=("field", "rtol", "atol"))


def diffrax_solve(problem: JaxProblem, rtol: float, atol: float):
    """The loss, the outputs, the gradients (a pytree), the forward nfe and the Steps."""
    (loss, (ys, stats)), grads = diffrax_loss_and_grad()(problem.params, problem.y0, problem.t, problem.target,
                                                         field=problem.field, rtol=rtol, atol=atol)
    nfe = 6 * int(stats["num_steps"]) + 1
    return loss, ys, grads, nfe, Steps(int(stats["num_accepted_steps"]), int(stats["num_rejected_steps"]))


class JaxMethod(Method):
    """A method in JAX, on a JaxProblem: `solve` differentiates too (see diffrax_solve)."""

    def run(self, problem: JaxProblem, rtol: float, atol: float) -> Run:
        loss, ys, grads, nfe, steps = self.solve(problem, rtol, atol)
        flat = np.concatenate([np.ravel(g) for g in jax_x64().tree_util.tree_leaves(grads)])
        return Run(float(loss), torch.from_dlpack(ys), torch.from_numpy(flat).double(), nfe, None, steps)


COMPILE = {"compile": True}
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("physode-aca", "physode aca", partial(physode_solve, gradient="aca"), "physode"),
    Method("physode-direct", "physode direct", partial(physode_solve, gradient="direct"), "physode"),
    Method("physode-aca-compiled", "physode aca, compiled", partial(physode_solve, gradient="aca", options=COMPILE),
           "physode"),
    Method("physode-direct-compiled", "physode direct, compiled",
           partial(physode_solve, gradient="direct", options=COMPILE), "physode"),
    Method("torchdiffeq", "torchdiffeq odeint (backprop)", torchdiffeq_odeint, "torchdiffeq"),
    Method("torchdiffeq-adjoint", "torchdiffeq odeint_adjoint", torchdiffeq_adjoint, "torchdiffeq"),
    Method("torchode", "torchode AutoDiffAdjoint", torchode_solve, "torchode"),
    JaxMethod("diffrax", "diffrax diffeqsolve", diffrax_solve, "diffrax"),
)}

# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def measure(name: str, methods: list[Method], args) -> list[Row]:
    """The first run of every method gives its nfe, steps and error; after the other warm-ups,
    --repeats rounds time each method once in turn."""
    build = PROBLEMS[name][0]
    rtol, atol = tolerances(name, args)
    args = argparse.Namespace(**{**vars(args), "rtol": rtol, "atol": atol})
    double = build(args).to(F64)
    truth = reference(double.func.vector_field, double.y0.detach(), double.t)
    rows, timed = [], []
    for method in methods:
        row = Row(name, method.name)
        rows.append(row)
        if (why := method.unavailable()) is not None:
            row.notes.append(why)
            continue
        problem = to_jax(build(args)) if isinstance(method, JaxMethod) else build(args)
        run = first_run(method, problem, args, row)
        if run is None:
            continue
        row.error = (run.outputs.double() - truth).abs().max().item()
        for _ in range(args.warmups - 1):
            method.run(problem, args.rtol, args.atol)
        timed.append((row, method, problem))
    time_in_turns(timed, args)
    return rows


def tolerances(name: str, args) -> tuple[float, float]:
    """rtol and atol: the problem's, unless --rtol or --atol replace them."""
    tol = PROBLEMS[name][1]
    return tol if args.rtol is None else args.rtol, tol if args.atol is None else args.atol


def run_benchmark(args) -> list[Row]:
    methods = [METHODS[name] for name in args.methods]
    return [row for name in args.problems for row in measure(name, methods, args)]

# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

COLUMNS = ("problem", "method", "time [ms]", "/diffrax", "/aca", "nfe fwd", "steps acc/rej", "max error")


def ratio(row: Row, rows: list[Row], method: str) -> float | None:
    other = next((r for r in rows if r.case == row.case and r.method == method), None)
    return row.seconds / other.seconds if other and other.seconds and row.seconds else None


def table(rows: list[Row]) -> Table:
    cells = [
        (r.case, r.method, "n/a" if r.seconds is None else f"{1e3 * r.seconds:.2f}",
         fmt(ratio(r, rows, "diffrax"), ".2f"), fmt(ratio(r, rows, "physode-aca"), ".2f"), fmt(r.nfe_forward, "d"),
         "-" if r.steps is None else f"{r.steps}/{r.rejected}", fmt(r.error, ".1e"))
        for r in rows
    ]
    return Table(COLUMNS, cells, left=(0, 1), groups=[r.case for r in rows])


def notes(rows: list[Row]) -> list[tuple[str, str]]:
    """Each method's distinct notes, once."""
    return list(dict.fromkeys((r.method, note) for r in rows for note in r.notes))


def against_diffrax(rows: list[Row]) -> list[tuple[str, str, str]]:
    """(method, geometric mean over the problems of time / diffrax's time, on how many problems)."""
    summary = []
    for method in dict.fromkeys(r.method for r in rows):
        ratios = [x for r in rows if r.method == method and (x := ratio(r, rows, "diffrax")) is not None]
        mean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
        summary.append((method, fmt(mean, ".2f"), str(len(ratios))))
    return summary


SUMMARY_COLUMNS = ("method", "time / diffrax (geometric mean)", "problems")


def format_text(rows: list[Row], args) -> str:
    summary = Table(SUMMARY_COLUMNS, against_diffrax(rows), left=(0,))
    return text_report([settings(args)], table(rows), notes(rows), "time against diffrax:", summary.text())


def format_markdown(rows: list[Row], args) -> str:
    summary = Table(SUMMARY_COLUMNS, against_diffrax(rows), left=(0,))
    return markdown_report(settings(args), [], table(rows), notes(rows), summary)


def settings(args) -> str:
    peers = ", ".join(f"{name} {library_version(name)}" for name in ("torchdiffeq", "torchode", "jax", "diffrax"))
    tols = ", ".join("{} {:g}/{:g}".format(name, *tolerances(name, args)) for name in args.problems)
    quick = f"; batch <= {QUICK_BATCH} (--quick)" if args.quick else ""
    return (f"dopri5, rtol/atol: {tols}; median of {args.repeats} timed runs after {args.warmups} untimed{quick}; "
            f"{versions(args)}; {peers}")


def library_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"

# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

QUICK = {"repeats": 1, "warmups": 1}


def parse_args(argv: list[str] | None = None):
    p = parser(__doc__, f"batch <= {QUICK_BATCH}, 1 repeat, 1 warm-up", repeats=7, rtol=None, atol=None, threads=1)
    p.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated subset of {','.join(PROBLEMS)}")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--warmups", type=int, default=2, help="untimed runs of every method before the timed ones")
    args = parse(p, argv, QUICK)
    args.problems = choices(p, "problems", args.problems, PROBLEMS)
    args.methods = choices(p, "methods", args.methods, METHODS)
    if args.device != "cpu" or args.child:
        p.error("peers.py runs on the CPU and measures no memory (no --device, no --child)")
    if args.warmups < 1:
        p.error("--warmups must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    if args.threads == 1:
        single_threaded_jax()
    run_command(args, None, run_benchmark, format_text, format_markdown)


if __name__ == "__main__":
    main()
