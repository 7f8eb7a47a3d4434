"""ODE-RNN and Latent ODE: the masked ODE-RNN against a dense hand-written one, gradient methods
that must agree, overfitting a tiny batch, and the public boundary."""

import math

import numpy as np
import pytest
import torch
import xarray as xr

from physode import odeint
from physode.series.irregular import IrregularBatch, interpolation_task
from physode.nn import ODERNN, GaussianGRUCell, KLAnnealing, LatentODE

F64 = torch.float64


def dense_odernn(model: ODERNN, times, values, backward: bool):
    """A hand-written ODE-RNN on fully observed data: Euler steps of span / steps between times,
    the last one shortened to land on the next time."""
    h = values.new_zeros(values.shape[0], model.hidden)
    step = float(times[-1] - times[0]) / model.steps
    order = list(range(len(times)))[::-1] if backward else list(range(len(times)))
    for i, k in enumerate(order):
        if i:
            t0, t1 = float(times[order[i - 1]]), float(times[k])
            direction = math.copysign(1.0, t1 - t0)
            while abs(t1 - t0) > step * (1 + 1e-9):
                h, t0 = h + direction * step * model.dynamics.field(h), t0 + direction * step
            h = h + (t1 - t0) * model.dynamics.field(h)
        h = model.cell(torch.cat([values[:, k], torch.ones_like(values[:, k])], dim=1), h)
    return h


@pytest.mark.parametrize("backward", [False, True])
def test_odernn_with_every_point_observed_equals_the_dense_version(backward):
    torch.manual_seed(0)
    times = torch.tensor([0.0, 0.013, 0.05, 0.2, 0.21, 0.5], dtype=F64)
    values = torch.randn(4, 6, 3, dtype=F64)
    model = ODERNN(3, 5, units=(16,), steps=20, dtype=F64)
    got = model(IrregularBatch(times, values, torch.ones_like(values)), backward=backward)
    assert torch.allclose(got, dense_odernn(model, times, values, backward), atol=1e-12, rtol=0)


def test_odernn_skips_the_update_where_a_series_observes_nothing():
    torch.manual_seed(1)
    times = torch.tensor([0.0, 0.1, 0.3], dtype=F64)
    values = torch.randn(2, 3, 2, dtype=F64)
    mask = torch.ones_like(values)
    mask[1, 1] = 0  # series 1 misses t = 0.1: its state just flows from 0 to 0.3
    model = ODERNN(2, 4, units=(8,), method="dopri5", dtype=F64, rtol=1e-10, atol=1e-12)
    got = model(IrregularBatch(times, values, mask))
    h = model.cell(torch.cat([values[1:, 0], torch.ones(1, 2, dtype=F64)], dim=1), torch.zeros(1, 4, dtype=F64))
    h = odeint(lambda t, y: model.dynamics.field(y), h, times[[0, 2]], rtol=1e-10, atol=1e-12, gradient="direct")[-1]
    h = model.cell(torch.cat([values[1:, 2], torch.ones(1, 2, dtype=F64)], dim=1), h)
    assert torch.allclose(got[1:], h, atol=1e-9, rtol=0)
    sequence = model(IrregularBatch(times, values, mask), sequence=True)
    assert sequence.shape == (2, 3, 4) and torch.allclose(sequence[:, -1], got)


def sine_batch(series=2, points=20):
    t = torch.linspace(0, 2, points, dtype=F64)
    phase = torch.linspace(0, 1.5, series, dtype=F64)
    x = torch.sin(2 * t + phase[:, None])[:, :, None]
    return IrregularBatch(t, x, torch.ones_like(x))


def test_latent_ode_overfits_a_tiny_batch():
    torch.manual_seed(0)
    batch = sine_batch()
    model = LatentODE(1, 2, encoder_hidden=8, units=(16,), obs_std=0.05, dtype=F64)
    before = model.evaluate(batch, fraction=1.0)
    result = model.fit(batch, epochs=100, batch_size=None, fraction=1.0, lr=3e-2, optimizer="adam",
                       kl=KLAnnealing(0, 0.0), samples=1, progress=False)
    after = model.evaluate(batch, fraction=1.0)
    variance = batch.values.var().item()
    assert result.epochs == 100 and before > 0.1 * variance
    assert after < 0.05 * variance, (before, after, variance)


@pytest.mark.parametrize("gradient, method, tolerance", [("aca", "dopri5", 1e-9), ("adjoint", "dopri5", 2e-3),
                                                          ("mali", "alf", 1e-8)])
def test_latent_ode_gradient_methods_agree_with_direct(gradient, method, tolerance):
    torch.manual_seed(3)
    batch = sine_batch(3, 12)
    task = interpolation_task(batch, 0.5, generator=torch.Generator().manual_seed(0))

    def gradient_of(name):
        torch.manual_seed(5)
        model = LatentODE(1, 3, encoder_hidden=6, units=(12,), gradient=name, method=method, rtol=1e-7, atol=1e-9,
                          dtype=F64)
        loss = model.negative_elbo(task, samples=2, generator=torch.Generator().manual_seed(1))
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    reference, got = gradient_of("direct"), gradient_of(gradient)
    assert (got - reference).norm() <= tolerance * reference.norm()


def test_kl_annealing_follows_the_schedule():
    schedule = KLAnnealing(wait=2, rate=0.5)
    assert [schedule.weight(e) for e in range(5)] == [0.0, 0.0, 0.0, 0.5, 0.75]
    with pytest.raises(ValueError, match="rate"):
        KLAnnealing(rate=1.0)


def test_extrapolate_returns_the_variables_at_the_new_times():
    ds = xr.Dataset({"x": (("series", "time", "k"), np.random.default_rng(0).normal(size=(3, 8, 2))),
                     "y": (("series", "time"), np.random.default_rng(1).normal(size=(3, 8)))},
                    coords={"time": np.linspace(0, 1, 8), "series": ["a", "b", "c"], "k": ["p", "q"]})
    model = LatentODE(3, 4, encoder_hidden=5, units=(8,), dtype=F64)
    out = model.extrapolate(ds, [1.0, 1.5, 2.0])
    assert out["x"].dims == ("series", "time", "k") and out["x"].shape == (3, 3, 2) and out["y"].shape == (3, 3)
    assert out["series"].values.tolist() == ["a", "b", "c"] and out["time"].values.tolist() == [1.0, 1.5, 2.0]
    assert np.isfinite(out["x"].values).all()


def test_latent_ode_refuses_bad_input():
    model = LatentODE(1, 2, encoder_hidden=4, units=(4,), dtype=F64)
    batch = sine_batch()
    with pytest.raises(ValueError, match="task must be one of"):
        model.fit(batch, task="forecast")
    with pytest.raises(ValueError, match="fraction"):
        model.fit(batch, fraction=1.5)
    with pytest.raises(ValueError, match="patience"):
        model.fit(batch, patience=3)
    with pytest.raises(ValueError, match="2 features; this LatentODE was built for 1"):
        model.evaluate(IrregularBatch(batch.times, batch.values.repeat(1, 1, 2), batch.mask.repeat(1, 1, 2)))
    with pytest.raises(TypeError, match="xarray.Dataset or an IrregularBatch"):
        model.fit(np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="method='alf'"):
        LatentODE(1, 2, gradient="mali").negative_elbo(interpolation_task(batch.to(torch.float32), 1.0))


def test_a_latent_ode_fit_resumes_exactly(tmp_path):
    batch = sine_batch(4, 10)
    settings = dict(fraction=0.5, batch_size=2, lr=1e-2, samples=2, progress=False, checkpoint=tmp_path / "fit.h5")
    torch.manual_seed(0)
    whole = LatentODE(1, 2, encoder_hidden=4, units=(8,), dtype=F64)
    reference = whole.fit(batch, epochs=4, **settings)
    (tmp_path / "fit.h5").unlink()
    torch.manual_seed(0)
    model = LatentODE(1, 2, encoder_hidden=4, units=(8,), dtype=F64)
    model.fit(batch, epochs=2, **settings)
    resumed = model.fit(batch, epochs=4, resume=True, **settings)
    np.testing.assert_array_equal(resumed.history["loss"].values, reference.history["loss"].values)
    for a, b in zip(model.parameters(), whole.parameters()):
        assert torch.equal(a, b)


def test_evaluate_on_the_unobserved_points_only():
    """A decoder that always predicts 0 scores the mean square of the values it is scored on:
    per series and feature, over every target point, or over the points not observed."""
    batch = sine_batch(series=3, points=12)
    model = LatentODE(1, 2, encoder_hidden=4, units=(8,), dtype=F64)
    torch.nn.init.zeros_(model.decoder.weight)
    torch.nn.init.zeros_(model.decoder.bias)
    task = interpolation_task(batch, 0.25, generator=torch.Generator().manual_seed(7))
    seen = torch.zeros(3, 12, dtype=F64)
    for j, t in enumerate(task.observed.times.tolist()):
        seen[:, batch.times.tolist().index(t)] = task.observed.mask[:, j, 0]
    squares = batch.values[..., 0].square()
    expected_unobserved = ((squares * (1 - seen)).sum(dim=1) / (1 - seen).sum(dim=1)).mean().item()
    assert seen.sum().item() == 9  # 3 of each series' 12 points observed
    assert model.evaluate(batch, fraction=0.25, seed=7, points="unobserved") == pytest.approx(expected_unobserved, rel=1e-12)
    assert model.evaluate(batch, fraction=0.25, seed=7) == pytest.approx(squares.mean(dim=1).mean().item(), rel=1e-12)
    with pytest.raises(ValueError, match=r"points must be one of \('all', 'unobserved'\), got 'seen'"):
        model.evaluate(batch, points="seen")


def test_the_reference_initialisation():
    """init="normal": every Linear's weights ~ N(0, 0.1^2) (sample std within 5% over ~20k weights),
    biases zero; the GRU cell keeps PyTorch's."""
    torch.manual_seed(0)
    model = LatentODE(3, 15, init="normal", dtype=F64)
    default = LatentODE(3, 15, dtype=F64)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    weights = torch.cat([m.weight.flatten() for m in linear])
    assert len(linear) == 8 and weights.numel() > 20000
    assert weights.std().item() == pytest.approx(0.1, rel=0.05) and abs(weights.mean().item()) < 0.01
    assert all(bool((m.bias == 0).all()) for m in linear)
    assert model.encoder.cell.weight_ih.abs().max() <= 30 ** -0.5  # PyTorch's U(-1/sqrt(hidden), 1/sqrt(hidden))
    assert not all(bool((m.bias == 0).all()) for m in default.modules() if isinstance(m, torch.nn.Linear))
    with pytest.raises(ValueError, match=r"init must be one of \('torch', 'normal'\), got 'xavier'"):
        LatentODE(3, init="xavier")


def test_the_gaussian_gru_cell_is_the_reference_formula():
    """GaussianGRUCell against its formula written out with the cell's own Linear layers:
    gates from [mean, std, x], the candidate from the reset-gated state, |.| on the stds."""
    torch.manual_seed(2)
    cell = GaussianGRUCell(3, 4, units=7).double()
    x, mean, std = torch.randn(5, 3, dtype=F64), torch.randn(5, 4, dtype=F64), torch.rand(5, 4, dtype=F64)

    def mlp(net, y):
        first, last = net.net[0], net.net[2]
        return last(torch.tanh(first(y)))

    y = torch.cat([mean, std, x], dim=1)
    u, r = torch.sigmoid(mlp(cell.update, y)), torch.sigmoid(mlp(cell.reset, y))
    candidate = mlp(cell.new_state, torch.cat([mean * r, std * r, x], dim=1))
    expected_mean = (1 - u) * candidate[:, :4] + u * mean
    expected_std = ((1 - u) * candidate[:, 4:].abs() + u * std).abs()
    got = cell(x, torch.cat([mean, std], dim=1))
    assert torch.allclose(got, torch.cat([expected_mean, expected_std], dim=1), atol=1e-15, rtol=0)
    assert bool((got[:, 4:] >= 0).all())
    with pytest.raises(ValueError, match=r"cell must be one of \('gru', 'gaussian'\), got 'lstm'"):
        ODERNN(3, 4, cell="lstm")


def test_the_gaussian_odernn_moves_only_the_mean_between_observations():
    """Every point observed: the dense ODE-RNN with Euler steps on the mean, the std carried."""
    torch.manual_seed(4)
    times = torch.tensor([0.0, 0.05, 0.3, 0.31, 0.6], dtype=F64)
    values = torch.randn(3, 5, 2, dtype=F64)
    model = ODERNN(2, 4, units=(8,), cell="gaussian", cell_units=6, steps=10, dtype=F64)
    assert model.state_size == 8
    got = model(IrregularBatch(times, values, torch.ones_like(values)), backward=True)
    h = values.new_zeros(3, 8)
    step = 0.6 / 10
    for i, k in enumerate(range(4, -1, -1)):
        if i:
            t0, t1 = float(times[k + 1]), float(times[k])
            mean = h[:, :4]
            while t0 - t1 > step * (1 + 1e-9):
                mean, t0 = mean - step * model.dynamics.field(mean), t0 - step
            h = torch.cat([mean + (t1 - t0) * model.dynamics.field(mean), h[:, 4:]], dim=1)
        h = model.cell(torch.cat([values[:, k], torch.ones_like(values[:, k])], dim=1), h)
    assert torch.allclose(got, h, atol=1e-12, rtol=0)


def test_the_logsumexp_objective_by_hand():
    """objective="logsumexp" is -logsumexp_k of the batch-mean bound of draw k, "elbo" its mean,
    both from the same draws of z0."""
    torch.manual_seed(6)
    batch = sine_batch(3, 10)
    task = interpolation_task(batch, 0.5, generator=torch.Generator().manual_seed(0))
    model = LatentODE(1, 2, encoder_hidden=4, units=(8,), encoder_cell="gaussian", obs_std=0.3, rtol=1e-10,
                      atol=1e-12, dtype=F64)
    losses = {name: model.negative_elbo(task, samples=4, kl_weight=0.7, objective=name,
                                        generator=torch.Generator().manual_seed(9)) for name in ("elbo", "logsumexp")}
    t0, mean, std = model.posterior(task.observed, task.target.times)
    assert t0 == batch.times[0]
    noise = torch.randn((4, *mean.shape), generator=torch.Generator().manual_seed(9), dtype=F64)
    bounds = []
    for k in range(4):
        with torch.no_grad():
            x = model.decode(mean + std * noise[k], t0, task.target.times)
        z = (task.target.values - x) / 0.3
        log_density = (-0.5 * z.square() - math.log(0.3) - 0.5 * math.log(2 * math.pi))[..., 0].mean(dim=1)
        kl = (0.5 * (std.square() + mean.square() - 1) - std.log()).mean(dim=1)
        bounds.append((log_density - 0.7 * kl).mean().item())
    assert losses["elbo"].item() == pytest.approx(-np.mean(bounds), rel=1e-10)
    assert losses["logsumexp"].item() == pytest.approx(-np.log(np.sum(np.exp(bounds))), rel=1e-10)
    with pytest.raises(ValueError, match=r"objective must be one of \('elbo', 'logsumexp'\), got 'iwae'"):
        model.negative_elbo(task, objective="iwae")


def test_keep_last_leaves_the_last_epoch():
    batch = sine_batch(4, 10)
    states = []
    settings = dict(fraction=0.5, batch_size=2, lr=5e-2, samples=1, progress=False, epochs=4,
                    callbacks=[lambda epoch, logs: states.append({k: v.clone() for k, v in model.state_dict().items()})])
    torch.manual_seed(0)
    model = LatentODE(1, 2, encoder_hidden=4, units=(8,), dtype=F64)
    result = model.fit(batch, keep="last", **settings)
    assert result.best_epoch == 4
    assert all(torch.equal(v, states[-1][k]) for k, v in model.state_dict().items())
    states.clear()
    torch.manual_seed(0)
    model = LatentODE(1, 2, encoder_hidden=4, units=(8,), dtype=F64)
    result = model.fit(batch, **settings)
    best = int(np.argmin(result.history["loss"].values)) + 1
    assert result.best_epoch == best
    assert all(torch.equal(v, states[best - 1][k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match=r"keep must be one of \('best', 'last'\), got 'final'"):
        model.fit(batch, keep="final")


@pytest.mark.parametrize("share, first", [(0.5, 6), (1 / 3, 4), (0.01, 1)])
def test_the_extrapolation_split(share, first):
    """A decoder that predicts 0 scores the mean square of the points from index floor(share * T)."""
    batch = sine_batch(series=3, points=12)
    model = LatentODE(1, 2, encoder_hidden=4, units=(8,), dtype=F64)
    torch.nn.init.zeros_(model.decoder.weight)
    torch.nn.init.zeros_(model.decoder.bias)
    expected = batch.values[:, first:, 0].square().mean().item()
    got = model.evaluate(batch, task="extrapolation", fraction=1.0, extrapolation_split=share)
    assert got == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"extrapolation_split must be a fraction in \(0, 1\), got 1"):
        model.fit(batch, extrapolation_split=1)


@pytest.mark.parametrize("start", ["first", "target"])
def test_where_z0_starts(start):
    """Extrapolating from the first half: start="first" evolves the encoder's state to the first
    observation and the latent ODE from there; "target" reads the encoder's state at the first
    observation as z at the first target time (Rubanova et al.'s code)."""
    torch.manual_seed(8)
    batch = sine_batch(3, 12)
    observed, times = batch.between(-1.0, 1.0), batch.times[6:]
    model = LatentODE(1, 2, encoder_hidden=4, units=(8,), start=start, rtol=1e-10, atol=1e-12, dtype=F64)
    with torch.no_grad():
        got = model.predict(observed, times)
        mean = model.to_posterior(model.encoder(observed, backward=True)).chunk(2, dim=-1)[0]
        grid = torch.cat([observed.times[:1], times]) if start == "first" else times
        z = odeint(lambda t, y: model.dynamics.field(y), mean, grid, rtol=1e-10, atol=1e-12)
        expected = model.decoder(z[len(grid) - len(times):]).transpose(0, 1)
    assert torch.allclose(got, expected, atol=1e-8, rtol=0)
    with pytest.raises(ValueError, match=r"start must be one of \('first', 'target'\), got 'last'"):
        LatentODE(1, 2, start="last")
