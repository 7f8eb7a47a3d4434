"""Bad input: clear errors at the call that name the argument; SolverError during integration."""

import pytest
import torch

import physode
from physode import SolverError
from problems import F64, Linear, exp_decay

Y0 = torch.tensor([1.0, 2.0], dtype=F64)
T = torch.tensor([0.0, 1.0], dtype=F64)


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown method 'rk45'; valid methods are .*dopri8.*explicit_adams.*rk38.*tsit5, scipy_solver"):
        physode.odeint(exp_decay, Y0, T, method="rk45")


def test_unknown_gradient_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown gradient 'backprop'.*aca, adjoint, direct"):
        physode.odeint(exp_decay, Y0, T, gradient="backprop")


@pytest.mark.parametrize(
    "t, error, message",
    [
        (torch.zeros(2, 2, dtype=F64), ValueError, "t must be a non-empty 1-D tensor"),
        (torch.tensor([], dtype=F64), ValueError, "t must be a non-empty 1-D tensor"),
        (torch.tensor([0.0, 1.0, 1.0], dtype=F64), ValueError, "strictly increasing or strictly decreasing"),
        (torch.tensor([0.0, 2.0, 1.0], dtype=F64), ValueError, "strictly increasing or strictly decreasing"),
        (torch.tensor([0.0, float("nan")], dtype=F64), ValueError, "t contains NaN"),
        (torch.tensor([0.0, float("inf")], dtype=F64), ValueError, "t contains NaN"),
        ("soon", TypeError, "t must be a 1-D tensor"),
    ],
)
def test_bad_times(t, error, message):
    with pytest.raises(error, match=message):
        physode.odeint(exp_decay, Y0, t)


def test_times_that_collapse_in_the_state_dtype():
    t = torch.tensor([0.0, 1.0, 1.0 + 1e-12], dtype=F64)
    with pytest.raises(ValueError, match="in the state's dtype torch.float32"):
        physode.odeint(exp_decay, Y0.float(), t)


@pytest.mark.parametrize(
    "y0, error, message",
    [
        (torch.tensor([1.0, float("nan")], dtype=F64), ValueError, "y0 contains NaN"),
        (torch.tensor([1, 2]), TypeError, "y0 must have a floating dtype"),
        ([1.0, 2.0], TypeError, "y0 must be a tensor or a tuple of tensors"),
        ((torch.ones(2), torch.ones(2, dtype=F64)), TypeError, "share one dtype and device"),
        (torch.zeros(0, dtype=F64), ValueError, "y0 is empty"),
    ],
)
def test_bad_initial_state(y0, error, message):
    with pytest.raises(error, match=message):
        physode.odeint(lambda t, y: y, y0, T)


def test_func_returning_wrong_shape_or_dtype():
    with pytest.raises(ValueError, match=r"func returned shape \(3,\) but y0 has shape \(2,\)"):
        physode.odeint(lambda t, y: torch.zeros(3, dtype=F64), Y0, T)
    with pytest.raises(TypeError, match="func returned dtype torch.float32 but y0 has dtype torch.float64"):
        physode.odeint(lambda t, y: y.float(), Y0, T)
    with pytest.raises(TypeError, match="func must return a tensor like y0, got float"):
        physode.odeint(lambda t, y: 1.0, Y0, T)
    with pytest.raises(TypeError, match="func must return a tuple of 2 tensors"):
        physode.odeint(lambda t, s: s[0], (Y0, Y0), T)
    with pytest.raises(ValueError, match=r"y0\[1\] has shape"):
        physode.odeint(lambda t, s: (s[0], s[0][:1]), (Y0, Y0), T)


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value", [0.0, -1e-6, float("nan"), torch.tensor([1e-6, 0.0], dtype=F64)])
def test_non_positive_tolerances(name, value):
    with pytest.raises(ValueError, match=f"{name} must be positive"):
        physode.odeint(exp_decay, Y0, T, **{name: value})


def test_tolerance_that_does_not_broadcast():
    with pytest.raises(ValueError, match=r"rtol of shape \(3,\) does not broadcast to the state's shape \(2,\)"):
        physode.odeint(exp_decay, Y0, T, rtol=torch.full((3,), 1e-6, dtype=F64))


def test_fixed_step_method_takes_no_adaptive_options():
    with pytest.raises(ValueError, match=r"options \['max_step'\] control adaptive steps; method 'rk4' is fixed-step"):
        physode.odeint(exp_decay, Y0, T, method="rk4", options={"max_step": 0.1})


def test_fixed_steps_exclude_adaptive_options():
    with pytest.raises(ValueError, match=r"options \['first_step', 'safety'\] control adaptive steps"):
        physode.odeint(exp_decay, Y0, T, options={"step_size": 0.1, "safety": 0.8, "first_step": 0.1})


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"unknown options \['max_nsteps'\].*max_steps.*max_num_steps \(= max_steps\)"):
        physode.odeint(exp_decay, Y0, T, options={"max_nsteps": 10})


@pytest.mark.parametrize("options, message", [
    ({"max_steps": 0}, "max_steps"), ({"first_step": -0.1}, "first_step"), ({"safety": 1.5}, "safety"),
    ({"min_factor": 2.0}, "min_factor"),
])
def test_bad_option_values(options, message):
    with pytest.raises(ValueError, match=message):
        physode.odeint(exp_decay, Y0, T, options=options)


def test_tensor_captured_by_a_closure_is_refused_by_aca():
    a = torch.tensor(0.5, dtype=F64, requires_grad=True)
    with pytest.raises(ValueError, match=r"func depends on 1 tensor\(s\) that require grad.*params="):
        physode.odeint(lambda t, y: a * y, Y0, T)
    physode.odeint(lambda t, y: a * y, Y0, T, gradient="direct")


def test_blow_up_raises_solver_error_with_time_and_step():
    with pytest.raises(SolverError) as info:
        physode.odeint(lambda t, y: y**2, torch.tensor([1.0], dtype=F64), torch.tensor([0.0, 2.0], dtype=F64))
    error = info.value
    assert error.reason in ("step size underflow", "non-finite state")
    assert 0.99 < error.t < 1.01 and error.step > 10  # the singularity is at t = 1
    assert f"t={error.t:.10g}" in str(error)


def test_fixed_step_blow_up_is_a_non_finite_state():
    with pytest.raises(SolverError, match="non-finite state") as info:
        physode.odeint(lambda t, y: y**3, torch.tensor([1.0], dtype=F64), torch.tensor([0.0, 2.0], dtype=F64),
                       method="euler", options={"step_size": 0.1})
    assert info.value.reason == "non-finite state"


def test_max_steps_exceeded():
    with pytest.raises(SolverError, match=r"max_steps exceeded at t=.* after 5 accepted steps"):
        physode.odeint(exp_decay, Y0, torch.tensor([0.0, 100.0], dtype=F64), options={"max_steps": 5})


def test_non_finite_derivative_at_the_start():
    with pytest.raises(SolverError, match=r"non-finite derivative func\(t0, y0\)"):
        physode.odeint(lambda t, y: y / 0.0, Y0, T)


def test_params_must_be_tensors():
    with pytest.raises(TypeError, match=r"params\[0\] must be a tensor"):
        physode.odeint(Linear(), Y0, T, params=(0.5,))


def test_adjoint_without_tsit5():
    with pytest.raises(ValueError, match="torchdiffeq, which has no method 'tsit5'"):
        physode.odeint(Linear(), Y0, T, method="tsit5", gradient="adjoint")


def test_adjoint_refuses_per_component_tolerances():
    with pytest.raises(ValueError, match="scalar rtol and atol only"):
        physode.odeint(Linear(), Y0, T, gradient="adjoint", rtol=torch.tensor([1e-6, 1e-7], dtype=F64))
    physode.odeint(Linear(), Y0, T, gradient="adjoint", rtol=torch.tensor(1e-6))


@pytest.mark.parametrize("options, error, message", [
    ({"beta2": float("nan")}, ValueError, "beta2'] must be a finite number"),
    ({"land_on_outputs": "no"}, TypeError, "must be True or False"),
    ({"safety": "0.9"}, TypeError, r"options\['safety'\] must be a number"),
])
def test_option_types(options, error, message):
    with pytest.raises(error, match=message):
        physode.odeint(exp_decay, Y0, T, options=options)


def test_no_spurious_underflow_on_a_long_float32_span():
    """A sharp pulse at t = 5 forces rejections early in a span of 1e5 time units."""
    def pulse(t, y):
        return 1e-2 / (1e-4 + (t - 5.0) ** 2) - 0.01 * y

    ys = physode.odeint(pulse, torch.zeros(1), torch.tensor([0.0, 1e5]), rtol=1e-5, atol=1e-6)
    assert torch.isfinite(ys).all()


def test_a_derivative_too_large_for_any_first_step_is_a_solver_error():
    """||f0|| so large that the starting step 0.01 ||y0|| / ||f0|| underflows to zero."""
    with pytest.raises(physode.SolverError, match="step size underflow at t=0"):
        physode.odeint(lambda t, y: y * 1e305, torch.full((2,), 1e3, dtype=torch.float64),
                       torch.tensor([0.0, 1.0], dtype=torch.float64))
