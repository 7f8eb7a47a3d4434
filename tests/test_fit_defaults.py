"""`fit` with nothing but the data: the optimizer it picks, float64 physics, Levenberg-Marquardt on
the zoo, why a fit stopped, and the arguments least squares refuses."""

import numpy as np
import pytest
import torch

from physode import MLP, Learned
from physode.datasets import three_body
from physode.systems import ThreeBody

from test_fit import Decay, Oscillator, oscillator_data

TRUE_MASS = np.array([0.8, 1.3, 1.0])


def _three_body(noise=0.0):
    """The flagship: positions on t in [0, 1] of a 401-point trajectory on [0, 2], and the truth."""
    data = three_body(mass=TRUE_MASS, t=np.linspace(0, 2, 401))
    observed = three_body(mass=TRUE_MASS, t=np.linspace(0, 2, 401), noise=noise) if noise else data
    return observed.sel(time=slice(0, 1)).drop_vars("velocity"), data


def _extrapolation_error(model, train, truth, result) -> float:
    times = truth["time"].values
    future = model.extrapolate(train, times, initial_state=result.initial_state)
    return float(((future["position"].values - truth["position"].values)[:, times > 1] ** 2).mean())


def test_three_body_with_defaults_recovers_the_masses():
    train, truth = _three_body()
    model = ThreeBody()
    result = model.fit(train)
    assert model.mass.dtype == torch.float64
    assert np.abs(model.mass.detach().numpy() / TRUE_MASS - 1).max() < 1e-3
    assert _extrapolation_error(model, train, truth, result) < 1e-6
    assert result.stop_reason.startswith("converged") and result.epochs < 20
    assert result.solves > result.epochs and "damping" in result.history


@pytest.mark.slow
@pytest.mark.parametrize("noise", [1e-4, 1e-3, 1e-2])
def test_three_body_with_defaults_is_within_two_standard_errors(noise):
    train, _ = _three_body(noise)
    model = ThreeBody()
    result = model.fit(train)
    report = result.report()
    errors = np.abs(report["value"].values - TRUE_MASS) / report["std_error"].values
    assert result.stop_reason.startswith("converged")
    assert errors.max() < 2.0, report


@pytest.mark.slow
@pytest.mark.parametrize("noise", [1e-4, 1e-3, 1e-2])
def test_pendulum_and_lotka_volterra_with_defaults_are_within_two_standard_errors(noise):
    from physode.datasets import lotka_volterra, pendulum
    from physode.systems import DampedPendulum, LotkaVolterra

    swings = pendulum(length=1.5, linear_friction=0.3, quadratic_friction=0.0, t=np.linspace(0, 5, 101),
                      angle=(1.0, -0.6), angular_velocity=(0.0, 1.0), noise=noise).drop_vars("angular_velocity")
    populations = lotka_volterra(t=np.linspace(0, 5, 101), prey=(1.0, 2.0), predator=(1.0, 0.5), noise=noise)
    for model, data, truth in [(DampedPendulum(), swings, [1.5, 0.3]), (LotkaVolterra(), populations, [1.5, 1, 3, 1])]:
        result = model.fit(data)
        report = result.report()
        assert result.stop_reason.startswith("converged")
        assert (np.abs(report["value"].values - truth) / report["std_error"].values).max() < 2.0, report


def test_oscillator_with_defaults_recovers_parameters_and_initial_velocity():
    model = Oscillator()
    result = model.fit(oscillator_data().drop_vars("v"))
    assert model.omega.item() == pytest.approx(2.0, rel=1e-6)
    assert model.damping.item() == pytest.approx(0.1, rel=1e-5)
    assert np.allclose(result.initial_state["v"].values, [0.3, 1.0], atol=1e-6)
    assert result.history["loss"].values[-1] < 1e-12


def test_physics_is_float64_and_hybrids_keep_the_default_dtype():
    class Hybrid(Decay):
        correction = Learned(MLP, 1, 1, hidden=(4,))

        def learned(self, t, s):
            return {"x": self.correction(s.x.unsqueeze(-1)).squeeze(-1)}

    assert Decay().k.dtype == torch.float64
    assert Hybrid().k.dtype == torch.get_default_dtype() == torch.float32
    assert Decay(dtype=torch.float32).k.dtype == torch.float32


def test_auto_picks_least_squares_for_physics_lbfgs_for_hybrids_adam_for_mini_batches():
    data = oscillator_data(noise=1e-3).drop_vars("v")

    class Hybrid(Oscillator):
        correction = Learned(MLP, 1, 1, hidden=(4,))

        def learned(self, t, s):
            return {"v": self.correction(s.v.unsqueeze(-1)).squeeze(-1)}

    physics = Oscillator().fit(data, epochs=2)
    hybrid = Hybrid(dtype=torch.float64).fit(data, epochs=1)
    batched = Oscillator().fit(data, epochs=1, batch_size=1)
    assert "damping" in physics.history and "lr" not in physics.history
    assert hybrid.history["lr"].values[0] == 1.0  # L-BFGS's learning rate
    assert batched.history["lr"].values[0] == 1e-2  # Adam's


def test_stop_reasons():
    data = oscillator_data(noise=1e-3).drop_vars("v")
    assert Oscillator().fit(data, epochs=1).stop_reason == "max_epochs"
    assert Oscillator().fit(data, callbacks=[lambda epoch, logs: epoch == 2]).stop_reason == "callback"

    def interrupt(epoch, logs):
        raise KeyboardInterrupt

    result = Oscillator().fit(data, callbacks=[interrupt])
    assert result.stop_reason == "interrupted" and result.interrupted
    assert Oscillator().fit(data).stop_reason in ("converged: ftol", "converged: xtol", "converged: gtol")
    lbfgs = Oscillator().fit(data, optimizer="lbfgs", epochs=50)
    assert lbfgs.stop_reason == "converged: ftol" and lbfgs.epochs < 50


def test_a_trial_point_where_the_solve_fails_is_rejected_and_the_fit_goes_on():
    """The vector field is NaN for omega > 2.02, just beyond the answer 2: Levenberg-Marquardt's
    second step overshoots there, is rejected, and the damped steps converge."""

    class Edge(Oscillator):
        beyond = 0

        def physics(self, t, s):
            if self.omega.item() > 2.02:
                type(self).beyond += 1
            return {"x": s.v, "v": -self.omega**2 * s.x + 0.0 * torch.sqrt(2.02 - self.omega)}

    data = oscillator_data(damping=0.0, x0=(1.0,), v0=(0.0,)).drop_vars("v")
    model = Edge(omega=1.7, damping=0.01)
    result = model.fit(data)
    assert Edge.beyond > 0 and result.history["trials"].values.max() > 1
    assert np.isfinite(result.history["loss"].values).all()
    assert model.omega.item() == pytest.approx(2.0, rel=1e-6)


def test_least_squares_with_multiple_shooting_and_validation():
    """Oscillator over 8 time units from a poor frequency: shooting windows of 5 intervals, the last
    20% of the points held out for validation."""
    data = oscillator_data(t=np.linspace(0, 8, 41), x0=(1.0,), v0=(0.0,)).drop_vars("v")
    model = Oscillator(omega=1.2)
    result = model.fit(data, shooting=5, validation=0.2, patience=5)
    assert model.omega.item() == pytest.approx(2.0, rel=1e-5)
    assert np.isfinite(result.history["val_loss"].values).all()


def test_least_squares_resumes_exactly(tmp_path):
    data = oscillator_data(noise=1e-2).drop_vars("v")
    reference = Oscillator()
    expected = reference.fit(data, ftol=0, xtol=0, gtol=0, epochs=5)

    def interrupt(epoch, logs):
        if epoch == 2:
            raise KeyboardInterrupt

    path = tmp_path / "fit.h5"
    assert Oscillator().fit(data, ftol=0, xtol=0, gtol=0, epochs=5, checkpoint=path, callbacks=[interrupt]).interrupted
    resumed = Oscillator()
    result = resumed.fit(data, ftol=0, xtol=0, gtol=0, epochs=5, checkpoint=path, resume=True)
    assert result.epochs == 5 and result.stop_reason == "max_epochs"
    assert resumed.omega.item() == pytest.approx(reference.omega.item(), rel=1e-12)
    assert np.allclose(result.history["loss"].values, expected.history["loss"].values, rtol=1e-10)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"optimizer": "newton"}, ValueError, "levenberg_marquardt"),
    ({"lr": 0.1}, ValueError, "lr does not apply to optimizer='levenberg_marquardt'"),
    ({"optimizer": "levenberg_marquardt", "loss": "mae"}, ValueError, "needs loss='mse'"),
    ({"optimizer": "levenberg_marquardt", "batch_size": 1}, ValueError, "whole data set as one batch"),
    ({"ftol": 1.5}, ValueError, r"ftol must be a number in \[0, 1\)"),
    ({"xtol": -1e-3}, ValueError, r"xtol must be a number in \[0, 1\)"),
    ({"gtol": "small"}, TypeError, "gtol must be a number"),
])
def test_bad_least_squares_arguments(kwargs, error, message):
    data = oscillator_data().drop_vars("v")
    with pytest.raises(error, match=message):
        Oscillator().fit(data, progress=False, **kwargs)


def test_noise_level_estimates_white_noise_on_a_smooth_signal():
    from physode.model.shooting import noise_level

    rng = np.random.default_rng(0)
    t = np.linspace(0, 10, 2001)
    clean = np.stack([np.sin(t), 0.5 * np.cos(2 * t)], axis=-1)[None]
    noisy = torch.tensor(clean + 0.01 * rng.standard_normal(clean.shape))
    assert noise_level({"x": noisy}) == pytest.approx(0.01, rel=0.1)
    assert noise_level({"x": torch.tensor(clean)}) < 1e-4
    assert noise_level({"x": noisy[:, :2]}) is None


def test_explicit_shooting_is_polished_by_single_shooting():
    data = oscillator_data(t=np.linspace(0, 8, 41), x0=(1.0,), v0=(0.0,), noise=1e-3).drop_vars("v")
    model = Oscillator(omega=1.2)
    result = model.fit(data, shooting=5)
    assert list(np.unique(result.history["stage"].values)) == [0, 1]
    single = Oscillator(omega=model.omega.item()).fit(data, shooting=None)
    assert single.history["loss"].values[-1] == pytest.approx(result.history["loss"].values[-1], rel=1e-6)


@pytest.mark.slow
def test_a_stalled_fit_turns_to_multiple_shooting_by_itself():
    """Lotka-Volterra over ten cycles from rates half the truth: single shooting stalls in a local
    minimum (and says so); shooting="auto" turns to windows, then polishes, and finds the rates."""
    from physode.datasets import lotka_volterra
    from physode.systems import LotkaVolterra

    data = lotka_volterra(t=np.linspace(0, 20, 201), prey=(1.0, 2.0), predator=(1.0, 0.5), noise=1e-3)
    start = dict(alpha=0.5, beta=0.5, gamma=1.0, delta=0.5)
    with pytest.warns(RuntimeWarning, match="local minimum"):
        LotkaVolterra(**start).fit(data, shooting=None)
    model = LotkaVolterra(**start)
    result = model.fit(data)
    assert list(np.unique(result.history["stage"].values)) == [0, 1, 2]
    for name, value in dict(alpha=1.5, beta=1.0, gamma=3.0, delta=1.0).items():
        assert getattr(model, name).item() == pytest.approx(value, rel=1e-3)
