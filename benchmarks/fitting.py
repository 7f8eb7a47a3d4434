"""Fitting benchmark: physode's default fit against scipy's least squares and physode's older
first-order recipes, on the zoo's physics-only systems.

Each problem fits a System's unknown parameters and every entry of its initial state to noisy
observations on a training span, from the same starting guesses (the parameters' declared
values; observed states from the first observation, the others by finite differences), then
extrapolates past the span:

    three-body-1e-4, three-body-1e-3
                ThreeBody (masses 0.8, 1.3, 1.0), positions of a 401-point trajectory on [0, 2]
                with Gaussian noise of that standard deviation; trained on [0, 1], extrapolated on
                (1, 2] from the fitted initial state
    pendulum    DampedPendulum (length 1.5 m, friction 0.3 / s), the angle of two swings on
                [0, 10] s (201 points, noise 1e-3); trained on [0, 5], extrapolated on (5, 10]
    lotka-volterra
                LotkaVolterra (1.5, 1, 3, 1), prey and predators of two series on [0, 10] (201
                points, noise 1e-3); trained on [0, 5], extrapolated on (5, 10]

Methods (one thread each):

    physode default       Model().fit(train): float64, Levenberg-Marquardt on the exact Jacobian from
                          forward sensitivities, dopri5 at rtol 1e-6, atol 1e-8
    scipy least_squares   scipy.optimize.least_squares (trf, 2-point finite-difference Jacobian, its
                          default ftol = xtol = gtol = 1e-8) on residuals from solve_ivp (DOP853,
                          rtol = atol = 1e-10), the same unknowns (log parameters, initial state)
    scipy, jac_sparsity   the same, told that a series' residuals depend on the parameters and its own
                          initial state only (grouped finite differences, the lsmr trust-region solver)
    physode adam (old)    the defaults before Levenberg-Marquardt: float32, Adam lr 1e-2, 100 epochs,
                          first observations held fixed
    physode lbfgs         examples/three_body.py's recipe: float64, L-BFGS lr 1, 6 epochs, rtol = atol
                          = 1e-8

With --zoo it measures instead what the defaults reach on the zoo: each physics-only system on
its generator's data at noise 1e-4, 1e-3 and 1e-2 (the largest parameter error in standard errors
of report()), and each hybrid against its physics-only counterpart on data with physics the
latter lacks (three bodies with a drag 0.3; a pendulum with quadratic friction 0.1; predators that
saturate, handling time 0.5): the extrapolation MSE of both.

Reported: wall time of the fit (after a warm-up fit of the same problem that primes torch.func),
ODE solves (scipy: every solve_ivp call, finite differences included; physode: FitResult.solves,
a solve with its gradient or Jacobian counting once), the largest relative parameter error, and
the mean squared error of the extrapolation of the observed states against the noise-free truth.

    python benchmarks/fitting.py --threads 1
    python benchmarks/fitting.py --threads 1 --problems three-body-1e-3 --methods default,scipy
    python benchmarks/fitting.py --threads 1 --zoo

The test suite never imports this file.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

import harness
from physode.datasets import lotka_volterra, pendulum, three_body
from physode.systems import DampedPendulum, LotkaVolterra, LotkaVolterraHybrid, Pendulum, ThreeBody, ThreeBodyHybrid


@dataclass
class Problem:
    """Noisy observations `train`, the noise-free `truth` on the whole span, the true parameters,
    the System class, where training ends, and the vector field for scipy (rhs(t, y, params))."""

    name: str
    model: type
    train: object
    truth: object
    parameters: dict[str, np.ndarray]
    end: float
    rhs: Callable


def _gravity(_, y, mass):
    r, v = y[:9].reshape(3, 3), y[9:].reshape(3, 3)
    separation = r[None, :, :] - r[:, None, :]
    distance = np.linalg.norm(separation, axis=-1) + np.eye(3)
    weight = mass[None, :] * (1 - np.eye(3)) / distance**3
    return np.concatenate([v.reshape(-1), (weight[..., None] * separation).sum(axis=1).reshape(-1)])


def _damped(_, y, params):
    length, friction = params
    return [y[1], -9.81 / length * np.sin(y[0]) - friction * y[1]]


def _predation(_, y, params):
    alpha, beta, gamma, delta = params
    return [alpha * y[0] - beta * y[0] * y[1], -gamma * y[1] + delta * y[0] * y[1]]


def bodies(noise: float, drag: float = 0.0, model: type = ThreeBody, series: int = 1) -> Problem:
    times, mass = np.linspace(0, 2, 401), np.array([0.8, 1.3, 1.0])
    truth = three_body(mass=mass, t=times, drag=drag, series=series)
    train = three_body(mass=mass, t=times, drag=drag, noise=noise, series=series).sel(time=slice(0, 1)).drop_vars("velocity")
    name = f"three-body-{noise:g}" if series == 1 else f"three-body-fleet-{series}"
    return Problem(name, model, train, truth, {"mass": mass}, 1.0, _gravity)


def swing(noise: float, quadratic: float = 0.0, model: type = DampedPendulum) -> Problem:
    settings = dict(length=1.5, linear_friction=0.3, quadratic_friction=quadratic, t=np.linspace(0, 10, 201),
                    angle=(1.0, -0.6), angular_velocity=(0.0, 1.0))
    train = pendulum(**settings, noise=noise).sel(time=slice(0, 5)).drop_vars("angular_velocity")
    truth = {"length": 1.5} if quadratic else {"length": 1.5, "friction": 0.3}
    return Problem(f"pendulum-{noise:g}", model, train, pendulum(**settings), truth, 5.0, _damped)


def predators(noise: float, saturation: float = 0.0, model: type = LotkaVolterra) -> Problem:
    settings = dict(t=np.linspace(0, 10, 201), prey=(1.0, 2.0), predator=(1.0, 0.5), saturation=saturation)
    truth = {"alpha": 1.5, "gamma": 3.0} if saturation else {"alpha": 1.5, "beta": 1.0, "gamma": 3.0, "delta": 1.0}
    return Problem(f"lotka-volterra-{noise:g}", model, lotka_volterra(**settings, noise=noise).sel(time=slice(0, 5)),
                   lotka_volterra(**settings), truth, 5.0, _predation)


def problems() -> dict[str, Callable[[], Problem]]:
    return {"three-body-0.0001": lambda: bodies(1e-4), "three-body-0.001": lambda: bodies(1e-3),
            "pendulum": lambda: swing(1e-3), "lotka-volterra": lambda: predators(1e-3),
            "three-body-fleet": lambda: bodies(1e-3, series=16)}


HYBRIDS = {  # data with physics the physics-only system lacks, the physics-only system, its hybrid
    "three-body, drag 0.3": (lambda model: bodies(1e-3, drag=0.3, model=model), ThreeBody, ThreeBodyHybrid),
    "pendulum, quadratic friction 0.1": (lambda model: swing(1e-3, quadratic=0.1, model=model), DampedPendulum,
                                         Pendulum),
    "lotka-volterra, saturation 0.5": (lambda model: predators(1e-3, saturation=0.5, model=model), LotkaVolterra,
                                       LotkaVolterraHybrid),
}


@dataclass
class Outcome:
    seconds: float
    solves: int
    parameter_error: float
    extrapolation_mse: float
    note: str = ""
    report: Callable | None = None


def _errors(problem: Problem, fitted: dict[str, np.ndarray], paths: dict[str, np.ndarray]) -> tuple[float, float]:
    """Largest relative parameter error, and the MSE of the observed states after the training span."""
    error = max(float(np.max(np.abs(np.asarray(fitted[k]) / np.asarray(v) - 1))) for k, v in problem.parameters.items())
    times = problem.truth["time"].values
    future = times > problem.end
    squares = [(paths[name][:, future] - problem.truth[name].values[:, future]) ** 2 for name in problem.train.data_vars]
    return error, float(np.mean(np.concatenate([s.reshape(-1) for s in squares])))


def _physode(settings: dict, dtype=None) -> Callable[[Problem], Outcome]:
    def run(problem: Problem) -> Outcome:
        torch.manual_seed(0)
        model = problem.model(dtype=dtype)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = model.fit(problem.train, progress=False, **settings)
        seconds = time.perf_counter() - start
        future = model.extrapolate(problem.train, problem.truth["time"].values, initial_state=result.initial_state,
                                   rtol=1e-10, atol=1e-10)
        fitted = {k: v.double().numpy() for k, v in model.parameter_values().items()}
        error, mse = _errors(problem, fitted, {name: future[name].values for name in problem.train.data_vars})
        return Outcome(seconds, result.solves, error, mse, result.stop_reason, result.report)

    return run


def _scipy(problem: Problem, sparse: bool = False) -> Outcome:
    """least_squares over [log parameters, every initial-state entry of every series], from the guesses physode uses;
    with `sparse`, told which unknowns each residual depends on (jac_sparsity: the parameters, and its own series'
    initial state), so that its finite differences perturb the series' states together."""
    model = problem.model()
    names = list(problem.parameters)
    guess_parameters = np.concatenate([np.log(np.atleast_1d(model.parameter_values()[n].numpy())) for n in names])
    sizes = [np.atleast_1d(model.parameter_values()[n].numpy()).size for n in names]
    times = problem.train["time"].values
    observed = {n: torch.tensor(problem.train[n].values) for n in model.observed_states}
    guess = {**model.initial_guess(torch.tensor(times), observed), **{n: v[:, 0] for n, v in observed.items()}}
    series = problem.train.sizes["series"]
    states = model.state_names
    initial = np.stack([np.concatenate([np.broadcast_to(np.asarray(guess[s], dtype=float), (series, *type(model).states()[s].shape))[k]
                                        .reshape(-1) for s in states]) for k in range(series)])
    widths = [math.prod(type(model).states()[s].shape) for s in states]
    calls = [0]

    def unpack(x):
        params = np.exp(x[:sum(sizes)])
        split = np.split(params, np.cumsum(sizes)[:-1])
        values = split[0] if problem.name.startswith("three-body") else np.concatenate(split)
        return values, x[sum(sizes):].reshape(series, -1)

    def paths(x, t):
        values, starts = unpack(x)
        out = []
        for y0 in starts:
            calls[0] += 1
            solution = solve_ivp(problem.rhs, (t[0], t[-1]), y0, method="DOP853", t_eval=t, rtol=1e-10, atol=1e-10,
                                 args=(values,))
            out.append(solution.y.T if solution.success else np.full((len(t), len(y0)), np.nan))
        return np.stack(out)  # (series, time, state)

    def residual(x):
        flat = paths(x, times)
        pieces, offset = [], 0
        for name, width in zip(states, widths):
            if name in observed:
                target = problem.train[name].values.reshape(series, len(times), -1)
                pieces.append((flat[:, :, offset:offset + width] - target).reshape(-1))
            offset += width
        return np.concatenate(pieces)

    x0 = np.concatenate([guess_parameters, initial.reshape(-1)])
    sparsity = None
    if sparse:
        rows = np.concatenate([np.repeat(np.arange(series), len(times) * width) for name, width in zip(states, widths)
                               if name in observed])
        own = np.repeat(np.arange(series), initial.shape[1])
        sparsity = np.hstack([np.ones((len(rows), sum(sizes)), dtype=bool), rows[:, None] == own[None, :]])
    start = time.perf_counter()
    result = least_squares(residual, x0, jac="2-point", method="trf", jac_sparsity=sparsity)
    seconds = time.perf_counter() - start
    values, _ = unpack(result.x)
    fitted = dict(zip(names, np.split(np.exp(result.x[:sum(sizes)]), np.cumsum(sizes)[:-1])))
    solves = calls[0]
    flat = paths(result.x, problem.truth["time"].values)
    predicted, offset = {}, 0
    for name, width in zip(states, widths):
        predicted[name] = flat[:, :, offset:offset + width].reshape(series, flat.shape[1], *type(model).states()[name].shape)
        offset += width
    error, mse = _errors(problem, {k: v if v.size > 1 else v[0] for k, v in fitted.items()}, predicted)
    return Outcome(seconds, solves, error, mse, result.message.split(".")[0].lower())


METHODS = {
    "default": ("physode default (LM)", _physode({})),
    "scipy": ("scipy least_squares + solve_ivp", _scipy),
    "scipy-sparse": ("scipy, with jac_sparsity", lambda problem: _scipy(problem, sparse=True)),
    "adam": ("physode adam (old defaults)", _physode({"optimizer": "adam", "lr": 1e-2, "epochs": 100,
                                                       "learn_initial_state": "unobserved"}, torch.float32)),
    "lbfgs": ("physode lbfgs (example)", _physode({"optimizer": "lbfgs", "lr": 1.0, "epochs": 6, "rtol": 1e-8,
                                                  "atol": 1e-8}, torch.float64)),
}


def run_zoo(args) -> list:
    """The defaults on the zoo: physics-only systems at three noise levels, hybrids against physics."""
    rows, default = [], _physode({})
    default(bodies(1e-3))  # warm-up, as in run_benchmark
    for make in (bodies, swing, predators):
        for noise in (1e-4, 1e-3, 1e-2):
            problem = make(noise)
            outcome = default(problem)
            report = outcome.report()
            truth = np.concatenate([np.atleast_1d(problem.parameters[n]) for n in problem.parameters])
            errors = np.abs(report["value"].values - truth) / report["std_error"].values
            rows.append(("physics", problem.name, problem.model.__name__, outcome, float(errors.max())))
            print(f"{problem.name:24s} {outcome.seconds:6.1f} s  param err {outcome.parameter_error:.2e} = "
                  f"{errors.max():.2f} standard errors ({outcome.note})", flush=True)
    for name, (make, physics, hybrid) in HYBRIDS.items():
        for model in (physics, hybrid):
            outcome = default(make(model))
            rows.append(("hybrid", name, model.__name__, outcome, None))
            print(f"{name:34s} {model.__name__:20s} {outcome.seconds:6.1f} s  extrapolation mse "
                  f"{outcome.extrapolation_mse:.2e} ({outcome.note})", flush=True)
    return rows


def run_benchmark(args) -> list:
    rows = []
    _physode({})(bodies(1e-3))  # warm-up: torch.func's first transforms load their decompositions
    for key in args.problem_list:
        problem = problems()[key]()
        for method in args.method_list:
            label, run = METHODS[method]
            outcome = run(problem)
            print(f"{problem.name:18s} {label:32s} {outcome.seconds:7.2f} s  {outcome.solves:5d} solves  "
                  f"param err {outcome.parameter_error:.2e}  extrapolation mse {outcome.extrapolation_mse:.2e}  "
                  f"({outcome.note})", flush=True)
            rows.append((problem.name, method, label, outcome))
    return rows


def _table(rows) -> harness.Table:
    cells = [(name, label, harness.fmt(o.seconds, ".2f"), str(o.solves), harness.fmt(o.parameter_error, ".2e"),
              harness.fmt(o.extrapolation_mse, ".2e"), o.note) for name, _, label, o in rows]
    return harness.Table(("problem", "method", "time [s]", "solves", "param rel err", "extrap mse", "stopped"), cells,
                         left=(0, 1, 6), groups=[r[0] for r in rows])


def _summary(rows) -> harness.Table:
    by = {(name, method): o for name, method, _, o in rows}
    cells = []
    for name in dict.fromkeys(r[0] for r in rows):
        default, scipy = by.get((name, "default")), by.get((name, "scipy"))
        if default and scipy:
            cells.append((name, harness.fmt(scipy.seconds / default.seconds, ".1f"),
                          f"{default.parameter_error:.1e} / {scipy.parameter_error:.1e}"))
    return harness.Table(("problem", "scipy time / physode time", "param err physode / scipy"), cells, left=(0,))


def _zoo_tables(rows) -> tuple[harness.Table, harness.Table]:
    physics = [(name, model, harness.fmt(o.seconds, ".1f"), harness.fmt(o.parameter_error, ".2e"), f"{se:.2f}", o.note)
               for kind, name, model, o, se in rows if kind == "physics"]
    hybrids = [(name, model, harness.fmt(o.seconds, ".1f"), harness.fmt(o.extrapolation_mse, ".2e"), o.note)
               for kind, name, model, o, _ in rows if kind == "hybrid"]
    return (harness.Table(("data", "system", "time [s]", "param rel err", "err / std error", "stopped"), physics,
                          left=(0, 1, 5)),
            harness.Table(("data", "system", "time [s]", "extrap mse", "stopped"), hybrids, left=(0, 1, 4)))


def format_text(rows, args) -> str:
    if args.zoo:
        physics, hybrids = _zoo_tables(rows)
        return harness.text_report([harness.versions(args)], physics, [], "hybrids against physics only:", hybrids.text())
    return harness.text_report([harness.versions(args)], _table(rows), [], "speed-up over scipy:", _summary(rows).text())


def format_markdown(rows, args) -> str:
    physics, summary = _zoo_tables(rows) if args.zoo else (_table(rows), _summary(rows))
    return harness.markdown_report(harness.versions(args), [], physics, [], summary)


def main(argv: list[str] | None = None) -> None:
    p = harness.parser(__doc__, "the 1e-3 three-body problem, default and scipy", repeats=1, rtol=1e-6, atol=1e-8)
    p.add_argument("--problems", default=",".join(problems()), help="comma-separated subset of the problems")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ", ".join(METHODS))
    p.add_argument("--zoo", action="store_true", help="the defaults on the zoo instead of the comparison")
    args = harness.parse(p, argv, {"problems": "three-body-0.001", "methods": "default,scipy"})
    args.problem_list = harness.choices(p, "problems", args.problems, list(problems()))
    args.method_list = harness.choices(p, "methods", args.methods, list(METHODS))
    harness.run_command(args, None, run_zoo if args.zoo else run_benchmark, format_text, format_markdown)


if __name__ == "__main__":
    main()
