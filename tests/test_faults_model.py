"""Bad input to the modelling layer: declarations, vector fields, datasets, fits, resumes and generators.
Each case asserts the exception type and that the message names the argument."""

import math
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from physode import MLP, Constant, FitError, Learned, Parameter, State, System
from physode.datasets import lotka_volterra, pendulum, periodic, three_body
from physode.nn import LatentODE
from physode.systems.pendulum import DampedPendulum
from physode.training import store


class Decay(System):
    """x' = -k x for a 3-vector x."""

    x = State(3)
    k = Parameter(1.0, positive=True)

    def physics(self, t, s):
        return {"x": -self.k * s.x}


def field(derivative):
    """A system whose physics returns {"x": derivative(s)}."""

    class Field(System):
        x = State((3,))
        k = Parameter(1.0)

        def physics(self, t, s):
            return {"x": derivative(s)}

    return Field()


def call(system, series=2):
    return system(torch.tensor(0.0, dtype=torch.float64), (torch.ones(series, 3, dtype=torch.float64),))


@pytest.fixture(scope="module")
def angles():
    return pendulum(angle=(1.0, 0.5), angular_velocity=(0.0, 0.0), t=np.linspace(0.0, 2.0, 21))


# --- declarations -----------------------------------------------------------------------------

def test_state_shape_as_an_int_is_a_vector():
    assert State(3).shape == (3,)
    assert Decay().simulate({"x": np.ones(3)}, [0.0, 1.0])["x"].values[0, -1] == pytest.approx([math.exp(-1)] * 3, rel=1e-6)


@pytest.mark.parametrize("shape, error, message", [
    ("ab", TypeError, "State shape must be an int or a sequence of ints, got 'ab'"),
    ((2.5,), TypeError, "State shape must be an int or a sequence of ints"),
    ((-1,), ValueError, r"State shape must have positive sizes, got \(-1,\)"),
    (0, ValueError, r"State shape must have positive sizes, got \(0,\)"),
])
def test_bad_state_shapes(shape, error, message):
    with pytest.raises(error, match=message):
        State(shape)


@pytest.mark.parametrize("value, error, message", [
    ("abc", TypeError, "Parameter value must be a real number or an array of them, got str 'abc'"),
    (None, TypeError, "Parameter value must be a real number or an array of them, got NoneType"),
    ([1.0, [2.0]], TypeError, "Parameter value must be a real number"),
    (1 + 2j, TypeError, "Parameter value must be a real number"),
])
def test_bad_parameter_values(value, error, message):
    with pytest.raises(error, match=message):
        Parameter(value)


def test_parameter_value_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"Parameter value has shape \(2,\); got a value of shape \(3,\)"):
        Parameter([1.0, 2.0, 3.0], shape=(2,))


@pytest.mark.parametrize("value, error, message", [
    ("fast", TypeError, "k must be a real number or an array of them, got str 'fast'"),
    ([1.0, 2.0], ValueError, r"k has shape \(\); got a value of shape \(2,\)"),
    (None, TypeError, "k must be a real number"),
])
def test_bad_parameter_values_given_to_the_constructor(value, error, message):
    with pytest.raises(error, match=message):
        Decay(k=value)


def test_constant_value_that_is_not_a_number():
    with pytest.raises(TypeError, match="Constant value must be a real number"):
        Constant("9.81")


def test_a_name_declared_twice_in_one_class_body():
    with pytest.raises(TypeError, match="'x' is declared twice in the class body, as a State and then as a Parameter"):
        class Twice(System):
            x = State()
            x = Parameter(1.0)  # noqa: F811


@pytest.mark.parametrize("name", ["forward", "fit", "parameters", "training", "simulate"])
def test_a_declaration_that_hides_a_system_attribute(name):
    with pytest.raises(TypeError, match=f"'{name}' is an attribute of every System and cannot name one of its states"):
        type("Hiding", (System,), {name: State(), "physics": lambda self, t, s: {}})


def test_a_declaration_that_takes_a_parameters_stored_name():
    with pytest.raises(TypeError, match="k_unconstrained: the name is taken by the unconstrained value of Parameter 'k'"):
        type("Clash", (System,), {"k": Parameter(1.0), "k_unconstrained": State(), "physics": lambda self, t, s: {}})


def test_a_learned_factory_missing_its_arguments_is_refused_at_declaration():
    with pytest.raises(TypeError, match=r"Learned\(MLP, \.\.\.\): the arguments do not fit MLP\(in_features"):
        Learned(MLP)
    with pytest.raises(TypeError, match=r"Learned\(MLP, \.\.\.\).*unexpected keyword argument 'width'"):
        Learned(MLP, 1, 1, width=3)


def test_a_learned_module_given_arguments():
    with pytest.raises(TypeError, match=r"Learned\(Linear\(\.\.\.\)\) takes a module without arguments"):
        Learned(torch.nn.Linear(2, 2), 3)


@pytest.mark.parametrize("arguments, error, message", [
    ({"bounds": ("a", "b")}, TypeError, "Parameter bounds must be a real number or an array of them"),
    ({"bounds": (0.0, 1.0, 2.0)}, ValueError, r"Parameter bounds must have shape \(2,\), got \(3,\)"),
    ({"bounds": (1.0, 0.0)}, ValueError, r"Parameter bounds must be \(lo, hi\) with lo < hi"),
    ({"positive": "yes"}, TypeError, "Parameter positive must be True or False, got 'yes'"),
    ({"fixed": 1}, TypeError, "Parameter fixed must be True or False, got 1"),
])
def test_bad_parameter_options(arguments, error, message):
    with pytest.raises(error, match=message):
        Parameter(0.5, **arguments)


@pytest.mark.parametrize("observed, error, message", [
    ("x", TypeError, "O.observed must be a tuple of State names, got 'x'"),
    ((), ValueError, "O.observed names no State; leave it out to observe every State"),
    (("y",), ValueError, r"O.observed names \['y'\], which are not States"),
])
def test_bad_observed_declarations(observed, error, message):
    with pytest.raises(error, match=message):
        type("O", (System,), {"x": State(), "observed": observed, "physics": lambda self, t, s: {}})


@pytest.mark.parametrize("arguments, error, message", [
    ({"dtype": "float64"}, TypeError, "Decay: dtype must be torch.float32 or torch.float64, got 'float64'"),
    ({"dtype": torch.float16}, TypeError, "Decay: dtype must be torch.float32 or torch.float64, got torch.float16"),
    ({"dtype": torch.int64}, TypeError, "Decay: dtype must be torch.float32 or torch.float64"),
    ({"device": "tpu"}, ValueError, "device 'tpu' is not available here"),
])
def test_bad_system_placement(arguments, error, message):
    with pytest.raises(error, match=message):
        Decay(**arguments)


def test_setting_a_parameter_to_a_string():
    with pytest.raises(TypeError, match="k must be a real number or an array of them, got str 'slow'"):
        Decay().k = "slow"


# --- the vector field -------------------------------------------------------------------------

@pytest.mark.parametrize("derivative, series, error, message", [
    (lambda s: s.x[:, 0], 3, ValueError, r"Field: the derivative of 'x' has shape \(3,\), but the state has shape \(3, 3\)"),
    (lambda s: s.x[:, 0], 1, ValueError, r"Field: the derivative of 'x' has shape \(1,\), but the state has shape \(1, 3\)"),
    (lambda s: s.x[0], 2, ValueError, r"Field: the derivative of 'x' has shape \(3,\), but the state has shape \(2, 3\)"),
    (lambda s: 1.0, 2, TypeError, r"Field: the derivative of 'x' must be a tensor of shape \(2, 3\).*got float"),
    (lambda s: (s.x,), 2, TypeError, "Field: the derivative of 'x' must be a tensor .*got tuple"),
    (lambda s: s.x.float(), 2, TypeError, "Field: the derivative of 'x' is torch.float32 on cpu, but the state is torch.float64"),
])
def test_derivatives_are_never_broadcast_or_cast(derivative, series, error, message):
    with pytest.raises(error, match=message):
        call(field(derivative), series)


def test_physics_that_returns_no_mapping():
    system = type("Listed", (System,), {"x": State(), "physics": lambda self, t, s: [s.x]})()
    with pytest.raises(TypeError, match=r"Listed.<lambda> must return a dict \{state name: derivative\}, got list"):
        system.simulate({"x": 1.0}, [0.0, 1.0])


def test_physics_that_names_no_state():
    system = type("Named", (System,), {"x": State(), "physics": lambda self, t, s: {"y": s.x}})()
    with pytest.raises(ValueError, match=r"returned a derivative for 'y', which is not a State \(\['x'\]\)"):
        system.simulate({"x": 1.0}, [0.0, 1.0])


def test_a_derivative_whose_shape_changes_after_the_first_step():
    calls = []

    def derivative(s):
        calls.append(None)
        return -s.x if len(calls) < 3 else -s.x[:, :1]

    system = field(derivative)
    with pytest.raises(ValueError, match=r"the derivative of 'x' has shape \(2, 1\), but the state has shape \(2, 3\)"):
        system.simulate({"x": np.ones((2, 3))}, [0.0, 1.0])


# --- simulate and extrapolate -----------------------------------------------------------------

@pytest.mark.parametrize("t, error, message", [
    ("soon", TypeError, "t must be a real number or an array of them, got str 'soon'"),
    ([], ValueError, r"t must be a 1-D array of at least 1 time, got shape \(0,\)"),
    ([[0.0, 1.0]], ValueError, r"t must be a 1-D array of at least 1 time, got shape \(1, 2\)"),
    ([0.0, np.inf], ValueError, r"t must be finite, got \[0.0, inf\]"),
])
def test_simulate_with_bad_times(t, error, message):
    with pytest.raises(error, match=message):
        Decay().simulate({"x": np.ones(3)}, t)


def test_extrapolate_from_an_initial_state_of_unknown_states(angles):
    with pytest.raises(ValueError, match=r"initial_state names \['speed'\], which are not States of DampedPendulum"):
        DampedPendulum().extrapolate(angles, [2.0, 3.0], initial_state={"speed": [0.0, 0.0]})


def test_simulate_with_labels_for_another_number_of_series():
    with pytest.raises(ValueError, match=r"series must give one label for each of the 2 series, got \(1,\)"):
        Decay().simulate({"x": np.ones((2, 3))}, [0.0, 1.0], series=["a"])


def test_simulate_with_an_initial_state_of_strings():
    with pytest.raises(TypeError, match="initial_state\\['x'\\] must hold real numbers"):
        Decay().simulate({"x": ["1", "2", "3"]}, [0.0, 1.0])


# --- datasets ---------------------------------------------------------------------------------

def test_dates_as_the_time_coordinate(angles):
    dates = np.datetime64("2026-01-01") + (angles.time.values * 1e9).astype("timedelta64[ns]")
    with pytest.raises(TypeError, match="time coordinate holds datetime64\\[ns\\] values; physode needs numbers"):
        DampedPendulum().fit(angles.assign_coords(time=dates), epochs=1)


def test_strings_as_the_time_coordinate(angles):
    with pytest.raises(TypeError, match="time coordinate holds <U.* values; physode needs real numbers"):
        DampedPendulum().fit(angles.assign_coords(time=angles.time.values.astype(str)), epochs=1)


def test_infinite_observations_are_not_missing_ones(angles):
    data = angles.copy(deep=True)
    data["angle"][0, 5] = np.inf
    with pytest.raises(ValueError, match="variable 'angle' has 1 infinite values; .*NaN marks a value that was not observed"):
        DampedPendulum().fit(data, epochs=1)


def test_observations_that_are_strings(angles):
    data = angles.assign(angle=angles.angle.astype(str))
    with pytest.raises(TypeError, match="variable 'angle' holds <U.* values; observations are real numbers"):
        DampedPendulum().fit(data, epochs=1)


@pytest.mark.parametrize("dim", ["series", "time"])
def test_empty_datasets(angles, dim):
    with pytest.raises(ValueError, match=f"the dataset is empty: its '{dim}' dimension has length 0"):
        DampedPendulum().fit(angles.isel({dim: slice(0, 0)}), epochs=1)


def test_a_fit_to_one_time_point(angles):
    with pytest.raises(ValueError, match="data has 1 time point; a fit needs at least two"):
        DampedPendulum().fit(angles.isel(time=[0]), epochs=1)


# --- fit arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, error, message", [
    ({"seed": -1}, ValueError, "seed must be a non-negative integer, got -1"),
    ({"seed": 1.5}, TypeError, "seed must be a non-negative integer, got float 1.5"),
    ({"progress": "yes"}, TypeError, "progress must be True or False, got 'yes'"),
    ({"callbacks": [1]}, TypeError, r"callbacks must be a list of callables callback\(epoch, logs\), got \[1\]"),
    ({"callbacks": print}, TypeError, "callbacks must be a list of callables"),
    ({"resume": "yes"}, ValueError, "resume must be True, False or 'force', got 'yes'"),
    ({"initial_state": {"speed": 0.0}}, ValueError, r"initial_state names \['speed'\], which are not States of DampedPendulum"),
    ({"initial_state": {"angular_velocity": "a"}}, TypeError, "the initial value of 'angular_velocity' must be real numbers"),
    ({"initial_state": [0.0]}, TypeError, "initial_state must be a mapping of state names to values, or a Dataset, got list"),
    ({"time_weight": "late"}, TypeError, "time_weight must be an array of weights or a callable of the times"),
    ({"time_weight": np.zeros(21)}, ValueError, "time_weight gives every time point weight 0"),
])
def test_bad_fit_arguments(angles, arguments, error, message):
    with pytest.raises(error, match=message):
        DampedPendulum().fit(angles, epochs=1, **arguments)


class Unstartable(System):
    """A field that is NaN at the starting parameter value k = 1 (sqrt(k - 2))."""

    angle = State()
    angular_velocity = State()
    k = Parameter(1.0)
    observed = ("angle",)

    def physics(self, t, s):
        return {"angle": s.angular_velocity, "angular_velocity": -torch.sqrt(self.k - 2) * s.angle}


def test_a_fit_that_cannot_start(angles):
    with pytest.raises(FitError, match="the system cannot be integrated from its starting values") as caught:
        Unstartable().fit(angles)
    assert caught.value.result is None


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_fit_whose_loss_is_never_finite(angles, optimizer):
    with pytest.warns(RuntimeWarning, match="update skipped"):
        with pytest.raises(FitError, match="none of its 2 epochs had a finite loss; the last failure: non-finite") as caught:
            Unstartable().fit(angles, epochs=2, optimizer=optimizer)
    assert caught.value.result.stop_reason == "failed"
    assert np.isnan(caught.value.result.history.loss.values).all()


def test_report_of_a_system_without_parameters(angles):
    class Known(System):
        angle = State()
        angular_velocity = State()
        observed = ("angle",)

        def physics(self, t, s):
            return {"angle": s.angular_velocity, "angular_velocity": -6.54 * torch.sin(s.angle)}

    result = Known().fit(angles, epochs=3, learn_initial_state="unobserved")
    with pytest.raises(ValueError, match="Known has no free Parameter: there is no physical parameter to report on"):
        result.report()


# --- resuming ---------------------------------------------------------------------------------

def squared(r):
    return r.square()


@pytest.mark.parametrize("first, second", [
    ({"time_weight": np.ones(21)}, {"time_weight": np.linspace(1.0, 2.0, 21)}),
    ({"continuity": 1.0}, {"continuity": 10.0}),
    ({"loss": "mse"}, {"loss": squared}),
])
def test_resuming_with_other_settings_is_refused(angles, tmp_path, first, second):
    path = tmp_path / "fit.h5"
    DampedPendulum().fit(angles, epochs=1, optimizer="adam", checkpoint=path, **first)
    with pytest.raises(ValueError, match=f"the checkpoint {path} was written by a different fit"):
        DampedPendulum().fit(angles, epochs=2, optimizer="adam", checkpoint=path, resume=True, **second)


def test_a_fit_with_a_named_callable_loss_resumes(angles, tmp_path):
    path = tmp_path / "fit.h5"
    DampedPendulum().fit(angles, epochs=1, optimizer="adam", loss=squared, checkpoint=path)
    resumed = DampedPendulum().fit(angles, epochs=2, optimizer="adam", loss=squared, checkpoint=path, resume=True)
    whole = DampedPendulum().fit(angles, epochs=2, optimizer="adam", loss=squared)
    np.testing.assert_allclose(resumed.history.loss.values, whole.history.loss.values, rtol=1e-12)


def test_a_fit_with_a_lambda_resumes_only_when_forced(angles, tmp_path):
    path = tmp_path / "fit.h5"
    loss = lambda r: r.square()  # noqa: E731
    DampedPendulum().fit(angles, epochs=1, optimizer="adam", loss=loss, checkpoint=path)
    with pytest.raises(ValueError, match="its loss is a lambda or local function.*Pass resume='force'"):
        DampedPendulum().fit(angles, epochs=2, optimizer="adam", loss=loss, checkpoint=path, resume=True)
    forced = DampedPendulum().fit(angles, epochs=2, optimizer="adam", loss=loss, checkpoint=path, resume="force")
    whole = DampedPendulum().fit(angles, epochs=2, optimizer="adam", loss=loss)
    assert forced.epochs == 2
    np.testing.assert_allclose(forced.history.loss.values, whole.history.loss.values, rtol=1e-12)


def test_resuming_a_checkpoint_of_another_model(angles, tmp_path):
    path = tmp_path / "fit.h5"
    loss = lambda r: r.square()  # noqa: E731
    DampedPendulum().fit(angles, epochs=1, optimizer="adam", loss=loss, checkpoint=path)

    class Longer(DampedPendulum):
        length = Parameter([1.0, 1.0], positive=True)

        def physics(self, t, s):
            return {"angle": s.angular_velocity, "angular_velocity": -self.length.sum() * s.angle}

    with pytest.raises(ValueError, match=f"the checkpoint {path} holds the state of another model or optimiser"):
        Longer().fit(angles, epochs=2, optimizer="adam", loss=loss, checkpoint=path, resume="force")


KILLED_FIT = """
import sys, time
import numpy as np
from physode.datasets import pendulum
from physode.systems.pendulum import DampedPendulum

def stop_here(epoch, logs):
    if epoch == 3:
        print("epoch 3", flush=True)
        time.sleep(60)

data = pendulum(angle=(1.0, 0.5), angular_velocity=(0.0, 0.0), t=np.linspace(0.0, 2.0, 21))
DampedPendulum().fit(data, epochs=5, optimizer="adam", checkpoint=sys.argv[1], callbacks=[stop_here])
"""


@pytest.mark.slow
def test_a_fit_killed_with_sigkill_resumes_exactly(angles, tmp_path):
    path = tmp_path / "fit.h5"
    child = subprocess.Popen([sys.executable, "-c", KILLED_FIT, str(path)], stdout=subprocess.PIPE, text=True,
                             cwd=tmp_path)  # the installed physode, not the source tree's directory
    try:
        assert child.stdout.readline() == "epoch 3\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    saved = store.load(path)
    assert saved["epoch"] == 2  # written after epoch 2; the kill came in epoch 3, before its checkpoint
    resumed = DampedPendulum().fit(angles, epochs=5, optimizer="adam", checkpoint=path, resume=True)
    assert resumed.history.seconds.values[:2].tolist() == saved["history"]["seconds"]  # taken over, not rerun
    whole = DampedPendulum().fit(angles, epochs=5, optimizer="adam")
    np.testing.assert_allclose(resumed.history.loss.values, whole.history.loss.values, rtol=1e-12)
    np.testing.assert_allclose(resumed.parameters["length"], whole.parameters["length"], rtol=1e-12)


def test_resuming_from_a_store_file_that_is_not_a_fit(angles, tmp_path):
    path = tmp_path / "other.h5"
    store.save(path, {"weights": torch.ones(3)})
    with pytest.raises(ValueError, match=f"{path} is not a checkpoint of a fit \\(it lacks \\['best', "):
        DampedPendulum().fit(angles, epochs=1, checkpoint=path, resume=True)
    assert torch.equal(store.load(path)["weights"], torch.ones(3))


# --- LatentODE --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def waves():
    return periodic(series=8, points=12)


@pytest.mark.parametrize("select, message", [
    ({"series": slice(0, 0)}, "the dataset is empty: its 'series' dimension has length 0"),
    ({"time": [0]}, "data must hold at least one series observed at two or more times, got 8 series and 1 times"),
])
def test_latent_ode_on_data_too_small(waves, select, message):
    with pytest.raises(ValueError, match=message):
        LatentODE(1).fit(waves.isel(select), epochs=1)


@pytest.mark.parametrize("arguments, error, message", [
    ({"min_lr": -1.0}, ValueError, "min_lr must be a non-negative finite number, got -1"),
    ({"seed": "0"}, TypeError, "seed must be a non-negative integer"),
    ({"callbacks": 3}, TypeError, "callbacks must be a list of callables"),
])
def test_latent_ode_fit_arguments(waves, arguments, error, message):
    with pytest.raises(error, match=message):
        LatentODE(1).fit(waves, epochs=1, **arguments)


def test_latent_ode_extrapolation_times_out_of_order(waves):
    with pytest.raises(ValueError, match=r"t must be finite and strictly increasing, got \[6.0, 5.5\]"):
        LatentODE(1).extrapolate(waves, [6.0, 5.5])


# --- generators -------------------------------------------------------------------------------

@pytest.mark.parametrize("generate, error, message", [
    (lambda: three_body(series=0), ValueError, "series must be a positive integer, got 0"),
    (lambda: three_body(series=2.0), TypeError, "series must be a positive integer, got float"),
    (lambda: three_body(mass=(1.0, 2.0)), ValueError, r"mass must have shape \(3,\), got \(2,\)"),
    (lambda: three_body(mass=(1.0, -1.0, 1.0)), ValueError, r"mass must be positive, got \[1.0, -1.0, 1.0\]"),
    (lambda: three_body(mass="heavy"), TypeError, "mass must be a real number or an array of them, got str"),
    (lambda: three_body(position=np.zeros((2, 3))), ValueError, r"position must have shape \(3, 3\), got \(2, 3\)"),
    (lambda: three_body(t=[0.0, 2.0, 1.0]), ValueError, r"t must be finite and strictly increasing, got \[0.0, 2.0, 1.0\]"),
    (lambda: pendulum(t=1.0), ValueError, r"t must be a 1-D array of at least 2 times, got shape \(\)"),
    (lambda: pendulum(length=0.0), ValueError, "length must be a positive finite number, got 0"),
    (lambda: pendulum(angle=(1.0, 2.0), angular_velocity=(0.0, 0.0, 0.0)), ValueError,
     r"the same positive number of series for each state, got \{'angle': 2, 'angular_velocity': 3\}"),
    (lambda: lotka_volterra(noise=-1.0), ValueError, "noise must be a non-negative finite number, got -1"),
    (lambda: lotka_volterra(prey=(np.nan,)), ValueError, r"prey must be finite, got \[nan\]"),
])
def test_bad_generator_arguments(generate, error, message):
    with pytest.raises(error, match=message):
        generate()


def test_generators_take_scalar_initial_values():
    data = pendulum(angle=0.5, angular_velocity=0.0, t=np.linspace(0.0, 0.1, 3))
    assert data.sizes["series"] == 1
    assert data["angle"].values[0, 0] == 0.5


def test_a_dataset_with_an_extra_variable_still_fits(angles):
    extra = angles.assign(note=xr.DataArray(np.zeros(angles.sizes["series"]), dims="series"))
    result = DampedPendulum().fit(extra, epochs=2)
    assert np.isfinite(result.history.loss.values).all()
