"""Bad input to the solver's front doors: each mistake raises a clear error that names the argument,
nothing hangs, and what is accepted in its place (a floored rtol, half precision on fixed steps)
is still right."""

import faulthandler
import math
import signal
import warnings

import numpy as np
import pytest
import torch

import physode
import physode.torchdiffeq as torchdiffeq
from physode.grad import ACA, Adjoint

F64 = torch.float64
T = torch.linspace(0.0, 1.0, 5)
Y0 = torch.ones(3)
DEADLINE = 10  # seconds a test may take before it counts as a hang


def decay(t, y):
    return -y


class Decay(torch.nn.Module):
    """dy/dt = -a y with a learnable rate."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(1.0, dtype=F64))

    def forward(self, t, y):
        return -self.a * y


def nan_after(t_bad):
    """-y, then NaN from t_bad on."""
    def field(t, y):
        return -y if float(t) < t_bad else y * math.nan
    return field


def changes_after_start(change):
    """-y at t = 0, change(-y) at every later time."""
    def field(t, y):
        return -y if float(t) == 0.0 else change(-y)
    return field


@pytest.fixture(autouse=True)
def deadline():
    """A hang fails its test after DEADLINE seconds (SIGALRM interrupts the Python stepping loop);
    one stuck in native code ends the run with a traceback after six times as long."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {DEADLINE} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(DEADLINE)
    faulthandler.dump_traceback_later(6 * DEADLINE, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# ---- dtypes ----

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("odeint", [physode.odeint, torchdiffeq.odeint], ids=["physode", "torchdiffeq"])
def test_half_precision_is_refused_for_adaptive_steps(dtype, odeint):
    with pytest.raises(TypeError, match=rf"y0 has dtype {dtype}.*torch.float32 or torch.float64.*step_size"):
        odeint(decay, Y0.to(dtype), T)


def test_half_precision_is_refused_by_the_event_search():
    with pytest.raises(TypeError, match="y0 has dtype torch.float16"):
        physode.odeint(decay, Y0.half(), torch.tensor([0.0, 1.0]), event_fn=lambda t, y: y[0] - 0.5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("gradient", ["aca", "direct"])
def test_half_precision_takes_fixed_steps_to_its_resolution(dtype, gradient):
    accuracy = 2 * torch.finfo(dtype).eps  # 20 steps of rk4, whose own error is 1e-7
    y0 = torch.ones(2, dtype=dtype, requires_grad=True)
    ys = physode.odeint(decay, y0, T, method="rk4", options={"step_size": 0.05}, gradient=gradient)
    assert ys.dtype == dtype
    assert (ys[:, 0].double() - torch.exp(-T.double())).abs().max() < accuracy
    ys[-1].sum().backward()
    assert (y0.grad.double() - math.exp(-1.0)).abs().max() < accuracy


@pytest.mark.parametrize("y0, expected", [
    (torch.ones(3, dtype=torch.complex64), r"torch.complex64; solve a complex state as its real and imaginary parts"),
    (torch.ones(3, dtype=torch.int64), "y0 must have a floating dtype .* got torch.int64"),
    (torch.ones(3, dtype=torch.bool), "y0 must have a floating dtype .* got torch.bool"),
], ids=["complex", "int", "bool"])
def test_a_state_that_is_not_real_floating_is_refused(y0, expected):
    with pytest.raises(TypeError, match=expected):
        physode.odeint(decay, y0, T)


# ---- tolerances ----

@pytest.mark.parametrize("dtype, rtol, atol, accuracy", [
    (F64, 1e-20, 1e-30, 1e-15), (torch.float32, 1e-12, 1e-20, 5e-7),
])
def test_an_rtol_below_the_dtype_is_raised_to_its_floor_with_a_warning(dtype, rtol, atol, accuracy):
    floor = torch.finfo(dtype).eps / 2
    with pytest.warns(UserWarning, match=rf"rtol={rtol:.3g} is below what {dtype} resolves; raised to its floor "
                                         rf"{floor:.3g}"):
        sol = physode.solve(decay, torch.ones(2, dtype=dtype), T.to(dtype), rtol=rtol, atol=atol)
    assert (sol.ys[:, 0] - torch.exp(-T.to(dtype))).abs().max() < accuracy
    assert sol.stats.accepted < 1000  # at the floor the steps follow the method's order


def test_an_rtol_tensor_below_the_floor_is_raised_where_it_is():
    rtol = torch.tensor([1e-3, 1e-30], dtype=F64)
    with pytest.warns(UserWarning, match=r"rtol has values below what torch.float64 resolves"):
        ys = physode.odeint(decay, torch.ones(2, dtype=F64), T.to(F64), rtol=rtol, atol=1e-30)
    assert abs(ys[-1, 1].item() - math.exp(-1.0)) < 1e-14


@pytest.mark.parametrize("call", [
    lambda: physode.odeint(decay, Y0, T),
    lambda: torchdiffeq.odeint(decay, Y0, T),
    lambda: torchdiffeq.odeint_adjoint(decay, Y0, T),
    lambda: physode.odeint(decay, Y0.half(), T, method="rk4", rtol=1e-9),
], ids=["physode-float32", "torchdiffeq-float32", "torchdiffeq-adjoint-float32", "fixed-steps-float16"])
def test_the_default_tolerances_and_fixed_steps_do_not_warn(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call()


def test_adjoint_rtol_below_the_floor_is_raised_with_a_warning_that_names_it():
    func, y0 = Decay(), torch.ones(2, dtype=F64, requires_grad=True)
    with pytest.warns(UserWarning, match="Adjoint rtol=1e-30 is below what torch.float64 resolves"):
        ys = physode.odeint(func, y0, T.to(F64), gradient=Adjoint(rtol=1e-30, atol=1e-12))
    ys[-1].sum().backward()
    assert abs(func.a.grad.item() + 2 * math.exp(-1.0)) < 1e-6  # d/da of 2 exp(-a) at a = 1


@pytest.mark.parametrize("name, value, error, expected", [
    ("atol", -1.0, ValueError, "atol must be positive and finite, got -1.0"),
    ("atol", math.nan, ValueError, "atol must be positive and finite, got nan"),
    ("atol", 0.0, ValueError, "atol must be positive and finite, got 0.0"),
    ("rtol", math.inf, ValueError, "rtol must be positive and finite, got inf"),
    ("rtol", "1e-3", TypeError, "rtol must be a positive number or tensor, got str"),
    ("rtol", True, TypeError, "rtol must be a positive number or tensor, got bool"),
    ("atol", torch.full((4,), 1e-6), ValueError, r"atol of shape \(4,\) does not broadcast to the state's shape"),
    ("rtol", torch.tensor([1e-3, -1.0, 1e-3]), ValueError, "rtol must be positive and finite everywhere"),
])
def test_a_bad_tolerance_is_refused_by_name(name, value, error, expected):
    with pytest.raises(error, match=expected):
        physode.odeint(decay, Y0, T, **{name: value})


@pytest.mark.parametrize("value, error", [("x", TypeError), (-1.0, ValueError)])
def test_a_bad_adjoint_tolerance_is_refused_by_name(value, error):
    with pytest.raises(error, match="Adjoint rtol must be a positive number or None"):
        torchdiffeq.odeint_adjoint(Decay(), Y0.double(), T.double(), adjoint_rtol=value, gradient="adjoint")


# ---- what could spin for ever ----

@pytest.mark.parametrize("call", [
    lambda: physode.odeint(nan_after(0.5), Y0, T, options={"min_step": 0.1}),
    lambda: physode.odeint(nan_after(0.5), Y0, T[[0, -1]], options={"min_step": 0.1},
                           event_fn=lambda t, y: y[0] - 0.01),
], ids=["solve", "event-search"])
def test_a_non_finite_state_at_min_step_stops(call):
    with pytest.raises(physode.SolverError, match="non-finite state at t=0.4.*at min_step and may not shrink"):
        call()


@pytest.mark.parametrize("dtype, options, expected", [
    (torch.float32, {"max_step": 1e-9}, "max_step 1e-09 is below the resolution of t near 2 in torch.float32"),
    (F64, {"max_step": 1e-18}, "max_step 1e-18 is below the resolution of t near 2 in torch.float64"),
    (torch.float32, {"step_size": 1e-9}, "step size 1e-09 is below the resolution of t near 2 in torch.float32"),
])
def test_a_step_below_the_resolution_of_t_stops_at_once(dtype, options, expected):
    with pytest.raises(physode.SolverError, match=f"step size underflow at t=1 after 0 accepted steps; {expected}"):
        physode.odeint(decay, Y0.to(dtype), torch.tensor([1.0, 2.0], dtype=dtype), method="rk4" if "step_size" in
                       options else "dopri5", options=options)


def test_fixed_steps_beyond_max_steps_stop_before_the_first():
    with pytest.raises(physode.SolverError, match=r"after 0 accepted steps; steps of 1e-06 from t=0 to 1 are more "
                                                  r"than options\['max_steps'\] \(100000\)"):
        physode.odeint(decay, Y0, T, method="euler", options={"step_size": 1e-6})


def test_max_steps_bounds_an_adaptive_solve():
    with pytest.raises(physode.SolverError, match=r"max_steps exceeded at t=.* after 5 accepted steps"):
        physode.odeint(decay, Y0, torch.tensor([0.0, 100.0]), options={"max_num_steps": 5})


def test_a_step_that_does_not_resolve_stops_the_event_search_and_hybrid_solve():
    with pytest.raises(physode.SolverError, match="max_step 1e-12 is below the resolution of t"):
        physode.solve_hybrid(decay, Y0, T[[0, -1]], physode.Event(lambda t, y: y[0] - 0.5), options={"max_step": 1e-12})


def test_a_tight_rtol_in_float32_finishes():
    with pytest.warns(UserWarning, match="rtol=1e-20"):
        sol = physode.solve(decay, Y0, T, rtol=1e-20, atol=1e-30)
    assert sol.stats.accepted < 100
    assert (sol.ys[:, 0] - torch.exp(-T)).abs().max() < 5e-7


@pytest.mark.parametrize("t, error, expected", [
    (torch.tensor([0.0, 1.0, 1.0, 2.0]), ValueError, "t must be strictly increasing or strictly decreasing"),
    (torch.tensor([0.0, 2.0, 1.0]), ValueError, "t must be strictly increasing or strictly decreasing"),
    (torch.tensor([0.0, math.inf]), ValueError, "t contains NaN or infinite values"),
    (torch.tensor([0.0, math.nan]), ValueError, "t contains NaN or infinite values"),
    (torch.zeros(1, 5), ValueError, r"t must be a non-empty 1-D tensor of times, got shape \(1, 5\)"),
    (torch.tensor([]), ValueError, r"t must be a non-empty 1-D tensor of times, got shape \(0,\)"),
    (torch.tensor([0.0, 1.0], dtype=torch.complex64), TypeError, "t must hold real times"),
    ("abc", TypeError, "t must be a 1-D tensor of times, got str"),
], ids=["repeated", "non-monotone", "inf", "nan", "2-d", "empty", "complex", "string"])
def test_bad_times_are_refused(t, error, expected):
    with pytest.raises(error, match=expected):
        physode.odeint(decay, Y0, t)


@pytest.mark.parametrize("t", [[0.0, 0.5, 1.0], np.array([0.0, 0.5, 1.0]), torch.tensor([0, 1])],
                         ids=["list", "numpy", "int-tensor"])
def test_times_as_a_list_array_or_integers_are_taken_in_the_state_dtype(t):
    ys = physode.odeint(decay, Y0.double(), t)
    assert ys.dtype == F64
    assert abs(ys[-1, 0].item() - math.exp(-1.0)) < 1e-6


def test_a_single_time_returns_the_initial_state():
    ys = physode.odeint(decay, Y0, torch.tensor([0.3]))
    assert ys.shape == (1, 3) and torch.equal(ys[0], Y0)


@pytest.mark.parametrize("y0, expected", [
    (torch.tensor([1.0, math.nan]), "y0 contains NaN or infinite values"),
    (torch.tensor([]), "y0 is empty"),
], ids=["nan", "empty"])
def test_a_bad_initial_state_is_refused(y0, expected):
    with pytest.raises(ValueError, match=expected):
        physode.odeint(decay, y0, T)


def test_a_nan_derivative_at_the_start_is_a_solver_error():
    with pytest.raises(physode.SolverError, match=r"non-finite derivative func\(t0, y0\) at t=0"):
        physode.odeint(lambda t, y: y * math.nan, Y0, T)


def test_a_zero_first_step_is_refused():
    with pytest.raises(ValueError, match=r"options\['first_step'\] must be a positive number, got 0"):
        physode.odeint(decay, Y0, T, options={"first_step": 0})


# ---- what func returns ----

@pytest.mark.parametrize("func, error, expected", [
    (changes_after_start(lambda f: f[:1]), ValueError,
     r"func returned shape \(1,\) but y0 has shape \(3,\) \(at t=0\.\d"),
    (changes_after_start(lambda f: f.double()), TypeError,
     r"func returned dtype torch.float64 but y0 has dtype torch.float32 \(at t=0\.\d"),
    (changes_after_start(lambda f: f.sum()), ValueError, r"func returned shape \(\) but y0 has shape \(3,\)"),
    (changes_after_start(lambda f: f.tolist()), TypeError,
     r"func must return a tensor like y0, got a list of 3 \(at t="),
    (lambda t, y: 1.0, TypeError, r"func must return a tensor like y0, got float \(at t=0\)"),
    (lambda t, y: (-y,), TypeError, r"func must return a tensor like y0, got a tuple of 1 \(at t=0\)"),
    (lambda t, y: torch.empty(3, device="meta"), ValueError, r"func returned a tensor on meta but y0 is on cpu"),
], ids=["shape-later", "dtype-later", "scalar-later", "list-later", "float", "tuple", "device"])
@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_what_func_returns_is_checked_at_every_evaluation(func, error, expected, method):
    with pytest.raises(error, match=expected):
        physode.odeint(func, Y0, T, method=method)


@pytest.mark.parametrize("func, error, expected", [
    (lambda t, y: -y[0], TypeError, r"func must return a tuple of 2 tensors like y0, got Tensor \(at t=0\)"),
    (lambda t, y: (-y[0], -y[1] if float(t) == 0.0 else -y[1].reshape(1, 2)), ValueError,
     r"func returned shape \(1, 2\) but y0\[1\] has shape \(2,\) \(at t=0\.\d"),
    (lambda t, y: (-y[0], -y[1]) if float(t) == 0.0 else (-y[0],), TypeError,
     r"func must return a tuple of 2 tensors like y0, got a tuple of 1 \(at t=0\.\d"),
], ids=["tensor", "piece-shape-later", "length-later"])
def test_a_tuple_state_checks_each_piece(func, error, expected):
    with pytest.raises(error, match=expected):
        physode.odeint(func, (torch.ones(2), torch.ones(2)), T)


@pytest.mark.parametrize("call", [
    lambda f: torchdiffeq.odeint(f, Y0, T),
    lambda f: torchdiffeq.odeint_adjoint(f, Y0, T, gradient="adjoint"),
    lambda f: physode.solve_hybrid(f, Y0, T, physode.Event(lambda t, y: y[0] - 0.5)),
    lambda f: physode.jvp(f, Y0.double(), T.double(), torch.ones(1, 3, dtype=F64)),
], ids=["torchdiffeq", "torchdiffeq-adjoint", "hybrid", "jvp"])
def test_a_shape_change_is_caught_on_every_front_door(call):
    with pytest.raises(ValueError, match=r"func returned shape \(1,\) but y0 has shape \(3,\) \(at t="):
        call(changes_after_start(lambda f: f[:1]))


class Narrowing(torch.nn.Module):
    """-y at its first call, then only the first component: a change a compiled graph holds."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, t, y):
        self.calls += 1
        return -y if self.calls == 1 else -y[:1]


def test_a_shape_change_is_caught_in_compiled_steps():
    with pytest.raises(ValueError, match=r"func returned shape \(1,\) but y0 has shape \(3,\) \(at t="):
        physode.odeint(Narrowing(), Y0.double(), T.double(), options={"compile": {"backend": "eager"}})


# ---- unclear arguments ----

@pytest.mark.parametrize("kwargs, error, expected", [
    ({"options": [("max_steps", 5)]}, TypeError, "options must be a dict, got list"),
    ({"options": "rtol=1e-3"}, TypeError, "options must be a dict, got str"),
    ({"options": {"maxsteps": 5}}, ValueError, r"unknown options \['maxsteps'\]; valid options are"),
    ({"gradient": object()}, TypeError, r"gradient must be one of \['aca', 'adjoint', 'direct', 'mali'\] or a "
                                         r"GradientMethod such as ACA\(\)"),
    ({"gradient": ACA}, TypeError, r"gradient must be a GradientMethod value such as ACA\(\), got the class ACA"),
    ({"gradient": "backprop"}, ValueError, "unknown gradient 'backprop'; valid gradients are aca, adjoint"),
    ({"method": 5}, TypeError, "method must be a method's name, a string such as 'dopri5', got int"),
    ({"method": None}, TypeError, "method must be a method's name, a string such as 'dopri5', got NoneType"),
    ({"method": ["rk4"]}, TypeError, "method must be a method's name, a string such as 'dopri5', got list"),
    ({"params": [1.0]}, TypeError, r"params\[0\] must be a tensor, got float"),
    ({"params": torch.ones(2)}, TypeError, r"params must be a sequence of tensors .* got Tensor"),
    ({"params": 3}, TypeError, r"params must be a sequence of tensors such as \(weight, bias\), got int"),
], ids=["options-list", "options-str", "options-key", "gradient-object", "gradient-class", "gradient-name",
        "method-int", "method-none", "method-list", "params-float", "params-tensor", "params-int"])
def test_a_bad_argument_is_refused_by_name(kwargs, error, expected):
    with pytest.raises(error, match=expected):
        physode.odeint(decay, Y0, T, **kwargs)


def test_a_func_that_is_not_callable_is_refused():
    with pytest.raises(TypeError, match=r"func must be callable as func\(t, y\), got int"):
        physode.odeint(3, Y0, T)


@pytest.mark.parametrize("call, error, expected", [
    (lambda: torchdiffeq.odeint(decay, Y0, T, method=["dopri5"]), TypeError, "method must be a method's name"),
    (lambda: torchdiffeq.odeint(decay, Y0, T, options="x"), TypeError, "options must be a dict, got str"),
    (lambda: torchdiffeq.odeint_adjoint(Decay(), Y0.double(), T.double(), adjoint_params=[1.0], gradient="adjoint"),
     TypeError, r"adjoint_params\[0\] must be a tensor, got float"),
    (lambda: torchdiffeq.odeint_adjoint(Decay(), Y0.double(), T.double(), adjoint_method="rk45", gradient="adjoint"),
     ValueError, r"Adjoint method must be one of \['bosh3', 'dopri5'"),
    (lambda: torchdiffeq.odeint_event(decay, Y0, 0.0, event_fn=lambda t, y: y[0] - 0.5, method=3),
     TypeError, "method must be a method's name"),
], ids=["method-list", "options-str", "adjoint-params", "adjoint-method", "event-method"])
def test_the_torchdiffeq_interface_refuses_by_name(call, error, expected):
    with pytest.raises(error, match=expected):
        call()


@pytest.mark.parametrize("which, options, adjoint", [
    ("forward", {"max_steps": 2}, Adjoint()),
    ("backward", None, Adjoint(options={"max_num_steps": 2})),
])
def test_torchdiffeqs_failed_assertions_are_solver_errors(which, options, adjoint):
    func = Decay()
    with pytest.raises(physode.SolverError, match=rf"torchdiffeq's solver stopped in the {which} pass of "
                                                  r"gradient='adjoint': max_num_steps exceeded"):
        ys = physode.odeint(func, torch.ones(2, dtype=F64), torch.linspace(0, 5, 3, dtype=F64), rtol=1e-10,
                            gradient=adjoint, options=options)
        ys.sum().backward()


def test_a_nan_under_torchdiffeqs_adjoint_is_a_solver_error():
    with pytest.raises(physode.SolverError, match="torchdiffeq's solver stopped in the forward pass.*underflow in dt"):
        physode.odeint(nan_after(0.3), Y0, T, gradient="adjoint")


def test_an_assertion_of_func_itself_is_not_relabelled():
    def field(t, y):
        assert float(t) < 0.5, "func's own check"
        return -y

    with pytest.raises(AssertionError, match="func's own check"):
        physode.odeint(field, Y0, T, gradient="adjoint")
