"""Gradient methods and step-size controllers as values, the stepper registry, and the fit layer
using the user's solver settings: each checked against the string or option form it replaces."""

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import xarray as xr

import physode
from physode import Parameter, State, System
from physode.grad import ACA, GRADIENTS, MALI, Adjoint, Direct
from physode.series import integrate_series, solve_series
from physode.solve import (
    METHODS, REGISTRY, ConstantStep, IController, PIController, make_stepper,
)
from problems import F64, Linear, Neural

T = torch.linspace(0.0, 2.0, 5, dtype=F64)


def _run(gradient="aca", method="dopri5", options=None, func=None, t=T, tol=1e-8):
    """(outputs, gradients for y0 and the parameters, stats) of one solve."""
    torch.manual_seed(1)
    func = func or Neural()
    y0 = torch.randn(2, 3, dtype=F64, requires_grad=True)
    solution = physode.solve(func, y0, t, method=method, gradient=gradient, rtol=tol, atol=tol, options=options)
    grads = torch.autograd.grad(solution.ys.square().sum(), [y0, *func.parameters()])
    return solution.ys.detach(), grads, solution.stats


def _identical(a, b) -> bool:
    (ys_a, grads_a, stats_a), (ys_b, grads_b, stats_b) = a, b
    return torch.equal(ys_a, ys_b) and all(torch.equal(x, y) for x, y in zip(grads_a, grads_b)) and stats_a == stats_b


@pytest.mark.parametrize("name, value", [("aca", ACA()), ("direct", Direct()), ("adjoint", Adjoint())])
def test_a_gradient_name_is_its_default_value(name, value):
    assert GRADIENTS[name] == value
    assert _identical(_run(name), _run(value))


def test_mali_by_name_and_value():
    assert _identical(_run("mali", method="alf", tol=1e-5), _run(MALI(), method="alf", tol=1e-5))


@pytest.mark.parametrize("schedule", ["binomial", "uniform"])
def test_aca_checkpoints_replace_the_deprecated_option(schedule):
    value = _run(ACA(checkpoints=3, schedule=schedule), t=torch.linspace(0.0, 6.0, 4, dtype=F64))
    with pytest.warns(DeprecationWarning, match=rf"ACA\(checkpoints=3, schedule='{schedule}'\)"):
        option = _run(options={"checkpoints": 3, "checkpoint_schedule": schedule}, t=torch.linspace(0.0, 6.0, 4, dtype=F64))
    every = _run("aca", t=torch.linspace(0.0, 6.0, 4, dtype=F64))
    assert _identical(value, option)
    assert value[2].nfe_backward > every[2].nfe_backward  # states were recomputed
    for g, h in zip(value[1], every[1]):
        assert (g - h).abs().max() <= 1e-12 * (1 + h.abs().max())


@pytest.mark.parametrize("make, message", [
    (lambda: ACA(checkpoints=0), "ACA checkpoints must be a positive integer"),
    (lambda: ACA(checkpoints=2.5), "ACA checkpoints must be a positive integer"),
    (lambda: ACA(schedule="revolve"), "ACA schedule must be one of"),
    (lambda: Adjoint(rtol=-1e-6), "Adjoint rtol must be a positive number"),
    (lambda: Adjoint(method="tsit5"), "Adjoint method must be one of"),
])
def test_gradient_values_check_their_options(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_deprecated_option_conflicting_with_an_aca_value():
    with pytest.raises(ValueError, match="conflict with gradient=ACA"):
        _run(ACA(checkpoints=2), options={"checkpoints": 4})


def test_a_gradient_that_is_not_a_gradient_method():
    with pytest.raises(TypeError, match="gradient must be one of"):
        _run(object())


def test_adjoint_backward_tolerance_and_method():
    """z' = a z, L = z(T)^2: dL/da = 2 T z(T)^2 in closed form. Tighter backward tolerances take
    more backward evaluations and leave a smaller error; another backward method runs too."""
    y0, t = torch.tensor([1.0], dtype=F64), torch.tensor([0.0, 3.0], dtype=F64)
    exact = 2 * 3.0 * (math.exp(0.5 * 3.0)) ** 2
    errors, nfe = {}, {}
    for key, gradient in {"loose": Adjoint(rtol=1e-3, atol=1e-3), "tight": Adjoint(rtol=1e-11, atol=1e-11),
                          "bosh3": Adjoint(rtol=1e-9, atol=1e-9, method="bosh3")}.items():
        func = Linear()
        solution = physode.solve(func, y0, t, gradient=gradient, rtol=1e-11, atol=1e-11)
        (grad,) = torch.autograd.grad(solution.ys[-1].square().sum(), [func.a])
        errors[key], nfe[key] = abs(grad.item() - exact) / exact, solution.stats.nfe_backward
    assert errors["tight"] < 1e-9 < errors["loose"] and nfe["tight"] > nfe["loose"]
    assert errors["bosh3"] < 1e-7


def test_controller_objects_match_the_options_they_replace():
    assert _identical(_run(options={"controller": IController()}), _run())
    assert _identical(_run(options={"controller": IController(safety=0.8, max_step=0.3, first_step=0.01)}),
                      _run(options={"safety": 0.8, "max_step": 0.3, "first_step": 0.01}))
    assert _identical(_run(method="alf", options={"controller": IController(accepted_min_factor=None)}, tol=1e-5),
                      _run(method="alf", tol=1e-5))
    assert _identical(_run(method="rk4", options={"controller": ConstantStep(0.05)}),
                      _run(method="rk4", options={"step_size": 0.05}))


def test_integral_controller_on_dopri5():
    """The PI controller takes other steps than the integral default, to the same accuracy (z' = a z)."""
    y0, t = torch.tensor([1.0], dtype=F64), torch.tensor([0.0, 10.0], dtype=F64)
    counts = {}
    for name, controller in (("pi", PIController()), ("i", IController())):
        solution = physode.solve(Linear(), y0, t, rtol=1e-8, atol=1e-8, options={"controller": controller})
        assert abs(solution.ys[-1].item() / math.exp(5.0) - 1) < 1e-6
        counts[name] = solution.stats.accepted + solution.stats.rejected
    assert counts["pi"] != counts["i"]
    assert IController().beta2 == 0.0 and IController().beta1 == 1.0
    with pytest.raises(TypeError):
        IController(beta2=0.2)


@dataclass(frozen=True)
class Doubling:
    """A user's controller: accepts every step and doubles the next one."""

    h: float
    placement = "fraction"
    adaptive = False

    def init(self, func, t0, y0, f0, direction, length, q, tolerance):
        return self.h, 0

    def adapt(self, state, trial):
        return True, 2 * trial.h, state + 1


def test_a_user_controller_drives_the_loop():
    """Steps 0.01, 0.02, ..., 0.64 cover [0, 1.27] in 7 steps; Euler's solution of y' = y on them."""
    solution = physode.solve(lambda t, y: y, torch.ones(1, dtype=F64), torch.tensor([0.0, 1.27], dtype=F64),
                             method="euler", gradient="direct", options={"controller": Doubling(0.01)})
    assert solution.stats.accepted == 7 and solution.stats.rejected == 0
    expected = math.prod(1 + 0.01 * 2**k for k in range(7))
    assert solution.ys[-1].item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("options, error, message", [
    ({"controller": "pi"}, TypeError, r"options\['controller'\] must be a step-size controller"),
    ({"controller": PIController(), "safety": 0.8}, ValueError, r"replaces options \['safety'\]"),
    ({"controller": ConstantStep(0.1), "step_size": 0.1}, ValueError, r"replaces options \['step_size'\]"),
])
def test_bad_controller_options(options, error, message):
    with pytest.raises(error, match=message):
        _run(options=options)


def test_an_adaptive_controller_needs_an_error_estimate():
    with pytest.raises(ValueError, match="method 'rk4' has no error estimate"):
        _run(method="rk4", options={"controller": PIController()})


@pytest.mark.parametrize("make, message", [
    (lambda: PIController(safety=1.5), r"PIController safety must be in \(0, 1\]"),
    (lambda: PIController(min_factor=2.0), "needs min_factor < 1 < max_factor"),
    (lambda: PIController(first_step=-1.0), "PIController first_step must be a positive number"),
    (lambda: IController(beta1=math.nan), "IController beta1 must be a finite number"),
    (lambda: ConstantStep(0.0), "ConstantStep h must be a positive number"),
])
def test_controllers_check_their_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("method", METHODS)
def test_the_registry_builds_every_method(method):
    stepper = make_stepper(method, F64, torch.device("cpu"))
    assert REGISTRY[stepper.name] is REGISTRY[method]
    assert stepper.has_dense_output == all(hasattr(stepper, k) for k in ("interpolate", "interpolant_stages"))
    assert callable(getattr(stepper, "inverse", None)) == (method == "alf")
    assert (REGISTRY[method].controller is None) != stepper.adaptive


def test_tuple_state_of_zero_dimensional_tensors():
    ys = physode.odeint(lambda t, y: (-y[0], -y[1]), (torch.tensor(1.0), torch.tensor(2.0)), torch.tensor([0.0, 1.0]))
    assert ys[0].shape == ys[1].shape == (2,)
    assert ys[0][-1].item() == pytest.approx(math.exp(-1.0), rel=1e-5)
    assert ys[1][-1].item() == pytest.approx(2 * math.exp(-1.0), rel=1e-5)


def test_solve_series_reports_the_work_of_its_solve():
    a = torch.tensor([[-0.5, 1.0], [-1.0, -0.5]], dtype=F64)
    times = torch.linspace(0.0, 2.0, 6, dtype=F64)
    observed = torch.ones(3, 6, dtype=torch.bool)
    y0 = torch.randn(3, 2, dtype=F64)
    solution = solve_series(lambda t, y: y @ a.T, y0, times, observed, rtol=1e-9, atol=1e-9, gradient="direct")
    reference = physode.solve(lambda t, y: y @ a.T, y0, times, rtol=1e-9, atol=1e-9, gradient="direct")
    assert solution.stats == reference.stats
    assert torch.equal(solution.ys, reference.ys.movedim(0, 1))
    assert torch.equal(integrate_series(lambda t, y: y @ a.T, y0, times, observed, rtol=1e-9, atol=1e-9), solution.ys)


class Decay(System):
    x = State()
    k = Parameter(1.0, positive=True)

    def physics(self, t, s):
        return {"x": -self.k * s.x}


@dataclass(frozen=True)
class Recording(Direct):
    """Direct, noting whether grad mode was on at each solve."""

    grad_modes: list = field(default_factory=list, compare=False)

    def solve(self, problem):
        self.grad_modes.append(torch.is_grad_enabled())
        return super().solve(problem)


def _decay_data():
    t = np.linspace(0, 3, 31)
    y = 2.0 * np.exp(-0.8 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return xr.Dataset({"x": (("series", "time"), y[None])}, coords={"series": [0], "time": t})


def test_a_first_order_fit_solves_everything_with_the_users_gradient_method():
    """Training, validation and the shooting nodes' start all go through the gradient method given;
    all but training without a graph."""
    gradient = Recording()
    Decay(dtype=F64).fit(_decay_data(), epochs=2, optimizer="adam", gradient=gradient, validation=0.2, shooting=5,
                         progress=False)
    assert gradient.grad_modes[0] is False  # the shooting nodes' start
    assert True in gradient.grad_modes and gradient.grad_modes.count(False) >= 3  # + 2 validations


def test_report_uses_the_fits_tolerances_unless_given_others():
    model = Decay(dtype=F64)
    result = model.fit(_decay_data(), epochs=3, optimizer="lbfgs", lr=1.0, learn_initial_state="all", rtol=1e-3,
                       atol=1e-3, progress=False)
    loose, tight = result.report(), result.report(rtol=1e-10, atol=1e-10)
    again = result.report(rtol=1e-10, atol=1e-10)
    assert loose.loc["k", "std_error"] != tight.loc["k", "std_error"]
    assert tight.loc["k", "std_error"] == again.loc["k", "std_error"]
    assert tight.loc["k", "std_error"] == pytest.approx(loose.loc["k", "std_error"], rel=0.05)
