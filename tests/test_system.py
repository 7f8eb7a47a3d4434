"""System declarations, parameter transforms, the vector field, simulate and extrapolate."""

import math
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

from physode import MLP, Learned, Parameter, State, System
from physode.datasets import three_body
from physode.systems import Pendulum, ThreeBody, ThreeBodyHybrid

F64 = torch.float64


class Oscillator(System):
    """x'' = -omega^2 x - c x'; omega unknown in (0.5, 5), c unknown positive."""

    x = State()
    v = State()
    omega = Parameter(2.0, bounds=(0.5, 5.0))
    damping = Parameter(0.1, positive=True)
    observed = ("x",)

    def physics(self, t, s):
        return {"x": s.v, "v": -self.omega**2 * s.x - self.damping * s.v}


def test_a_subclass_declaration_replaces_the_inherited_one():
    """Pendulum learns the friction that DampedPendulum declares as a Parameter."""
    from physode.systems import DampedPendulum

    assert set(DampedPendulum.physical_parameters()) == {"length", "friction"}
    assert set(Pendulum.physical_parameters()) == {"length"}
    assert isinstance(Pendulum().friction, torch.nn.Module)


def test_declarations_are_collected_in_order_and_inherited():
    assert list(ThreeBody.states()) == ["position", "velocity"]
    assert ThreeBody.states()["position"].shape == (3, 3) and ThreeBody.states()["position"].dims == ("body", "axis")
    assert ThreeBody.observed_states == ("position",)
    assert list(ThreeBodyHybrid.physical_parameters()) == ["mass"]
    model = ThreeBodyHybrid()
    assert isinstance(model.correction, MLP) and "correction" in dict(model.named_children())
    assert model.mass.shape == (3,)


@pytest.mark.parametrize("value", [0.7, 3.3])
def test_bounded_and_positive_parameters_round_trip(value):
    model = Oscillator(dtype=F64)
    model.omega = value
    model.damping = value / 10
    assert model.omega.item() == pytest.approx(value, rel=1e-12)
    assert model.damping.item() == pytest.approx(value / 10, rel=1e-12)
    raw = dict(model.named_parameters())
    assert raw["omega_unconstrained"].item() == pytest.approx(math.log((value - 0.5) / (5.0 - value)), rel=1e-12)
    assert raw["damping_unconstrained"].item() == pytest.approx(math.log(value / 10), rel=1e-12)


def test_parameter_values_are_checked():
    model = Oscillator()
    with pytest.raises(ValueError, match=r"must lie strictly inside \(0.5, 5.0\)"):
        model.omega = 6.0
    with pytest.raises(ValueError, match="positive Parameter damping must be > 0"):
        model.damping = -1.0
    with pytest.raises(ValueError, match="mass has shape \\(3,\\); got a value of shape \\(2,\\)"):
        ThreeBody().mass = [1.0, 2.0]
    with pytest.raises(TypeError, match=r"has no parameter or constant \['mas'\]"):
        ThreeBody(mas=[1.0, 1.0, 1.0])
    assert ThreeBody(mass=[1.1, 1.1, 0.9]).mass.tolist() == pytest.approx([1.1, 1.1, 0.9])


def test_learned_terms_are_per_instance():
    a, b = Pendulum(), Pendulum()
    with torch.no_grad():
        for p in a.friction.parameters():
            p.add_(1.0)
    assert not torch.equal(next(a.friction.parameters()), next(b.friction.parameters()))


def test_vector_field_sums_physics_and_learned():
    class Hybrid(System):
        x = State((2,))
        y = State()
        k = Parameter(2.0)
        term = Learned(torch.nn.Linear(2, 2, bias=False))

        def physics(self, t, s):
            return {"x": -self.k * s.x}

        def learned(self, t, s):
            return {"x": self.term(s.x)}

    model = Hybrid()
    x, y = torch.randn(5, 2), torch.randn(5)
    dx, dy = model(torch.tensor(0.0), (x, y))
    assert torch.allclose(dx, -2.0 * x + model.term(x))
    assert torch.equal(dy, torch.zeros(5))


def test_vector_field_errors_name_the_state():
    class Bad(System):
        x = State((2,))

        def physics(self, t, s):
            return {"x": torch.zeros(3), "z": s.x}

    with pytest.raises(ValueError, match="returned a derivative for 'z', which is not a State"):
        Bad()(torch.tensor(0.0), (torch.zeros(4, 2),))

    class Wrong(System):
        x = State((2,))

        def physics(self, t, s):
            return {"x": torch.zeros(4, 3)}

    with pytest.raises(ValueError, match="the derivative of 'x' has shape \\(4, 3\\), but the state has shape \\(4, 2\\)"):
        Wrong()(torch.tensor(0.0), (torch.zeros(4, 2),))


def test_a_system_needs_states_and_a_vector_field():
    with pytest.raises(TypeError, match="defines neither physics"):
        class Empty(System):
            x = State()
        Empty()
    with pytest.raises(ValueError, match=r"observed names \['z'\], which are not States"):
        class Unknown(System):
            x = State()
            observed = ("z",)


def test_three_body_simulation_matches_scipy():
    reference = three_body(mass=(1.1, 1.1, 0.9), t=np.linspace(0, 2, 21))
    model = ThreeBody(mass=[1.1, 1.1, 0.9], dtype=torch.float64)
    initial = reference.isel(time=0)
    simulated = model.simulate(initial, reference["time"].values, rtol=1e-11, atol=1e-11)
    assert simulated["position"].dims == ("series", "time", "body", "axis")
    assert np.abs(simulated["position"].values - reference["position"].values).max() < 1e-8
    assert np.abs(simulated["velocity"].values - reference["velocity"].values).max() < 1e-8


def test_extrapolate_is_labelled_like_the_input():
    reference = three_body(t=np.linspace(0, 2, 41), series=2)
    observed = reference.sel(time=slice(0, 1)).drop_vars("velocity").assign_coords(series=["a", "b"])
    model = ThreeBody(mass=[1.1, 1.1, 0.9], dtype=torch.float64)
    with pytest.raises(ValueError, match="'velocity' is not observed; pass its value at the start in initial_state"):
        model.extrapolate(observed, reference["time"].values)
    future = model.extrapolate(observed, reference["time"].values[20:], rtol=1e-11, atol=1e-11,
                               initial_state={"velocity": reference["velocity"].isel(time=0).values})
    assert list(future["series"].values) == ["a", "b"]
    assert np.allclose(future["time"].values, reference["time"].values[20:])
    assert np.abs(future["position"].values - reference["position"].values[:, 20:]).max() < 1e-8
    assert future["position"].attrs["units"] == "length"


def test_system_integrates_with_every_gradient_method():
    model = Oscillator(dtype=F64)
    initial = {"x": torch.tensor([1.0], dtype=F64), "v": torch.tensor([0.0], dtype=F64)}
    t = torch.linspace(0, 1, 5, dtype=F64)
    grads = {}
    for gradient in ("aca", "direct", "adjoint"):
        out = model.integrate(initial, t, gradient=gradient, rtol=1e-10, atol=1e-10)
        grads[gradient] = torch.autograd.grad(out["x"].square().sum(), list(model.parameters()))
    for g in ("aca", "adjoint"):
        for a, b in zip(grads["direct"], grads[g]):
            assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_three_body_hybrid_learns_an_unmodelled_drag():
    """Data with a drag the physics omits: the hybrid's learned term extrapolates better than gravity alone."""
    times = np.linspace(0.0, 2.0, 101)
    data = three_body(t=times, drag=0.3)
    observed = data.sel(time=slice(0.0, 1.0)).drop_vars("velocity")
    errors = {}
    for cls in (ThreeBody, ThreeBodyHybrid):
        torch.manual_seed(0)
        model = cls(dtype=F64)
        result = model.fit(observed)  # the defaults: Levenberg-Marquardt for the physics, L-BFGS for the hybrid
        path = model.extrapolate(observed, times, initial_state=result.initial_state, rtol=1e-9, atol=1e-9)
        errors[cls] = float(((path["position"].values - data["position"].values)[:, times > 1.0] ** 2).mean())
    assert errors[ThreeBodyHybrid] < 0.2 * errors[ThreeBody]


def test_extrapolate_from_the_last_observation():
    """Fully observed oscillator series with different last observed times continue from there."""

    class Harmonic(System):
        x = State()
        v = State()
        omega = Parameter(2.0)

        def physics(self, t, s):
            return {"x": s.v, "v": -self.omega**2 * s.x}

    t = np.linspace(0, 2, 21)
    x = np.stack([np.cos(2 * t), 0.5 * np.sin(2 * t)])
    v = np.stack([-2 * np.sin(2 * t), np.cos(2 * t)])
    x[0, 15:] = np.nan  # series 0 last fully observed at t[14]
    v[1, 18:] = np.nan  # series 1 at t[17]
    data = xr.Dataset({"x": (("series", "time"), x), "v": (("series", "time"), v)}, coords={"series": ["p", "q"], "time": t})
    future = np.linspace(2.0, 3.0, 6)
    path = Harmonic(dtype=F64).extrapolate(data, future, start="last", rtol=1e-11, atol=1e-11)
    assert list(path["series"].values) == ["p", "q"]
    assert np.allclose(path["x"].values, np.stack([np.cos(2 * future), 0.5 * np.sin(2 * future)]), atol=1e-8)
    with pytest.raises(ValueError, match="start must be 'first' or 'last'"):
        Harmonic(dtype=F64).extrapolate(data, future, start="middle")


@pytest.mark.slow
def test_pendulum_length_with_learned_friction():
    from physode.datasets import pendulum

    data = pendulum(length=1.5, t=np.linspace(0, 5, 51), angle=(1.0, -0.6), angular_velocity=(0.0, 1.0))
    torch.manual_seed(0)
    model = Pendulum(length=1.0, dtype=F64)
    model.fit(data.drop_vars("angular_velocity"), epochs=3, optimizer="lbfgs", lr=1.0, rtol=1e-7, atol=1e-9, progress=False)
    assert model.length.item() == pytest.approx(1.5, rel=1e-3)


@pytest.mark.slow
def test_lotka_volterra_interaction_is_learned():
    from physode.datasets import lotka_volterra
    from physode.systems import LotkaVolterraHybrid

    full = lotka_volterra(t=np.linspace(0, 8, 81), prey=(1.0, 2.0), predator=(1.0, 0.5))
    train = full.sel(time=slice(0, 4))
    torch.manual_seed(0)
    model = LotkaVolterraHybrid(alpha=1.0, gamma=2.0, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a line search may overshoot into a blow-up, and is undone
        model.fit(train)  # the default for a hybrid: L-BFGS
    assert model.alpha.item() == pytest.approx(1.5, rel=0.01)
    assert model.gamma.item() == pytest.approx(3.0, rel=0.05)
    future = model.extrapolate(train, full["time"].values[40:], rtol=1e-8, atol=1e-8)
    assert float(((future["prey"] - full["prey"].isel(time=slice(40, None))) ** 2).mean()) < 1e-3
