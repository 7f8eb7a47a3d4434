"""Fitting: parameter recovery, hybrids, masks, shooting, validation, failures, checkpoints, reports."""

import math
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.optimize import curve_fit

import physode
from physode import MLP, FitError, Learned, Parameter, State, System
from physode.datasets import reference_dataset
from physode.training import GradientUpdate

F64 = torch.float64


class Oscillator(System):
    """x'' = -omega^2 x - c x'; only x observed, so v(0) is fitted too."""

    x = State()
    v = State()
    omega = Parameter(1.5, positive=True)
    damping = Parameter(0.3, positive=True)
    observed = ("x",)

    def physics(self, t, s):
        return {"x": s.v, "v": -self.omega**2 * s.x - self.damping * s.v}


class Decay(System):
    x = State()
    k = Parameter(1.0, positive=True)

    def physics(self, t, s):
        return {"x": -self.k * s.x}


def oscillator_data(omega=2.0, damping=0.1, quadratic=0.0, t=None, x0=(1.0, -0.5), v0=(0.3, 1.0), noise=0.0, seed=0):
    t = np.linspace(0, 5, 51) if t is None else t

    def rhs(_, y):
        return [y[1], -omega**2 * y[0] - damping * y[1] - quadratic * y[1] * abs(y[1])]

    return reference_dataset(rhs, {"x": np.array(x0), "v": np.array(v0)}, t, {"x": (), "v": ()}, noise=noise, seed=seed)


def test_recovers_parameters_and_unobserved_initial_states():
    data = oscillator_data()
    model = Oscillator(dtype=F64)
    result = model.fit(data.drop_vars("v"), epochs=3, optimizer="lbfgs", lr=1.0, rtol=1e-8, atol=1e-8, progress=False)
    assert model.omega.item() == pytest.approx(2.0, rel=1e-6)
    assert model.damping.item() == pytest.approx(0.1, rel=1e-5)
    assert np.allclose(result.initial_state["v"].values, [0.3, 1.0], atol=1e-6)
    assert result.history["omega"].dims == ("epoch",) and len(result.history["loss"]) == result.epochs == 3
    assert result.parameters["omega"].item() == model.omega.item()


def test_missing_observations_are_ignored():
    data = oscillator_data(noise=1e-3).drop_vars("v")
    rng = np.random.default_rng(1)
    values = data["x"].values.copy()
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:, 0] = data["x"].values[:, 0]
    data["x"] = (data["x"].dims, values)
    model = Oscillator(dtype=F64)
    model.fit(data, epochs=3, optimizer="lbfgs", lr=1.0, rtol=1e-7, atol=1e-7, progress=False)
    assert model.omega.item() == pytest.approx(2.0, rel=1e-3)


@pytest.mark.slow
def test_multiple_shooting_fits_from_a_poor_start():
    data = oscillator_data(t=np.linspace(0, 8, 41), x0=(1.0,), v0=(0.0,)).drop_vars("v")
    model = Oscillator(omega=1.2, dtype=F64)
    model.fit(data, epochs=4, optimizer="lbfgs", lr=1.0, shooting=5, continuity=10.0, rtol=1e-7, atol=1e-7, progress=False)
    assert model.omega.item() == pytest.approx(2.0, rel=1e-3)


@pytest.mark.slow
def test_hybrid_extrapolates_better_than_physics_alone():
    """Data with quadratic drag that the physics omits: a learned term for it extrapolates better."""

    class Hybrid(Oscillator):
        drag = Learned(MLP, 1, 1, hidden=(16, 16))
        observed = ("x", "v")

        def learned(self, t, s):
            return {"v": self.drag(s.v.unsqueeze(-1)).squeeze(-1)}

    class Physics(Oscillator):
        observed = ("x", "v")

    t = np.linspace(0, 8, 81)
    data = oscillator_data(omega=2.0, damping=0.0, quadratic=0.4, t=t, x0=(1.5,), v0=(0.0,))
    train = data.sel(time=slice(0, 4))
    errors = {}
    for cls in (Physics, Hybrid):
        torch.manual_seed(0)
        model = cls(omega=2.0, damping=0.1, dtype=F64)
        model.fit(train)  # the defaults: Levenberg-Marquardt for the physics, L-BFGS for the hybrid
        future = model.extrapolate(train, t[40:], rtol=1e-8, atol=1e-8)
        errors[cls.__name__] = float(((future["x"] - data["x"].isel(time=slice(40, None))) ** 2).mean())
    assert errors["Hybrid"] < 0.5 * errors["Physics"]


def test_validation_split_and_early_stopping():
    data = oscillator_data(noise=1e-3).drop_vars("v")
    model = Oscillator(dtype=F64)
    result = model.fit(data, epochs=200, optimizer="adam", lr=0.2, validation=0.2, patience=3, progress=False)
    assert result.stopped_early and result.epochs < 200
    assert np.isfinite(result.history["val_loss"].values).all()
    assert result.best_epoch == int(np.argmin(result.history["val_loss"].values)) + 1


def test_resume_after_an_interruption_gives_the_uninterrupted_result(tmp_path):
    data = oscillator_data(noise=1e-2).drop_vars("v")
    settings = dict(epochs=6, lr=0.05, batch_size=1, rtol=1e-7, atol=1e-9, progress=False, seed=3)
    reference = Oscillator(dtype=F64)
    expected = reference.fit(data, **settings)

    def interrupt(epoch, logs):
        if epoch == 3:
            raise KeyboardInterrupt

    path = tmp_path / "fit.h5"
    interrupted = Oscillator(dtype=F64)
    partial = interrupted.fit(data, checkpoint=path, callbacks=[interrupt], **settings)
    assert partial.interrupted and partial.epochs == 3
    resumed = Oscillator(dtype=F64)
    result = resumed.fit(data, checkpoint=path, resume=True, **settings)
    assert result.epochs == 6
    assert torch.equal(resumed.omega, reference.omega) and torch.equal(resumed.damping, reference.damping)
    assert np.array_equal(result.history["loss"].values, expected.history["loss"].values)
    with pytest.raises(ValueError, match="written by a different fit"):
        Oscillator(dtype=F64).fit(data, checkpoint=path, resume=True, **{**settings, "lr": 0.01})


def test_failed_updates_are_skipped_then_the_fit_stops():
    class Explosive(System):
        x = State()
        k = Parameter(1.0)

        def physics(self, t, s):
            return {"x": self.k * s.x**2}

    t = np.linspace(0, 1, 11)
    data = xr.Dataset({"x": (("series", "time"), np.exp(-t)[None])}, coords={"series": [0], "time": t})
    model = Explosive(dtype=F64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FitError, match="failed updates in a row") as info:
            model.fit(data, epochs=5, lr=1e6, optimizer="sgd", max_failures=3, progress=False)
    assert sum("update skipped" in str(w.message) for w in caught) >= 3
    assert info.value.result.epochs >= 0 and info.value.result.stop_reason == "failed"


def test_report_matches_curve_fit_standard_errors():
    """Gauss-Newton standard errors of x' = -k x against scipy's curve_fit on x0 exp(-k t)."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 3, 40)
    y = 2.0 * np.exp(-0.8 * t) + 0.01 * rng.standard_normal(t.size)
    data = xr.Dataset({"x": (("series", "time"), y[None])}, coords={"series": [0], "time": t})
    model = Decay(dtype=F64)
    result = model.fit(data, epochs=3, optimizer="lbfgs", lr=1.0, learn_initial_state="all", rtol=1e-10, atol=1e-10,
                       progress=False)
    (x0, k), covariance = curve_fit(lambda s, a, b: a * np.exp(-b * s), t, y, p0=(2.0, 0.8))
    report = result.report()
    assert report.loc["k", "value"] == pytest.approx(k, rel=1e-6)
    assert report.loc["k", "std_error"] == pytest.approx(math.sqrt(covariance[1, 1]), rel=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"validation": 1.5}, "validation must be a fraction"),
    ({"patience": 3}, "patience \\(early stopping\\) needs a validation fraction"),
    ({"optimizer": "newton"}, "optimizer must be one of"),
    ({"loss": "l3"}, "loss must be one of"),
    ({"shooting": 1}, "shooting must be an integer"),
    ({"learn_initial_state": "some"}, "learn_initial_state must be one of"),
])
def test_bad_fit_arguments(kwargs, message):
    data = oscillator_data().drop_vars("v")
    with pytest.raises(ValueError, match=message):
        Oscillator(dtype=F64).fit(data, progress=False, **kwargs)


def test_an_epoch_of_failed_updates_is_never_the_best(monkeypatch):
    """The first epoch's only update fails; later epochs improve, and their parameters are kept."""
    original = GradientUpdate.__call__
    failed = []

    def flaky(update, index, run):
        if not failed:
            failed.append(True)
            raise physode.SolverError("injected failure", 0.0, 0)
        return original(update, index, run)

    monkeypatch.setattr(GradientUpdate, "__call__", flaky)
    model = Oscillator(dtype=F64)
    with pytest.warns(RuntimeWarning, match="update skipped"):
        result = model.fit(oscillator_data().drop_vars("v"), epochs=4, optimizer="adam", lr=0.05, progress=False)
    assert math.isnan(result.history["loss"].values[0])
    assert result.best_epoch > 1 and model.omega.item() != 1.5
