"""Adams methods (explicit_adams, implicit_adams, fixed_adams): weights against the classical
coefficients and exact quadrature, convergence orders against a closed form on uniform and
non-uniform grids, the start-up phase, and gradients against each other and finite differences."""

import itertools
import math
from fractions import Fraction

import pytest
import torch
from problems import F64, Neural

import physode
from physode.grad import ACA
from physode.solve import make_stepper

CPU = torch.device("cpu")
T0, T1 = 0.5, 2.5


def riccati(t, y):
    """y' = -2 t y^2, solved by y(t) = 1 / (1 + t^2)."""
    return -2 * t * y**2


def exact(t):
    return 1 / (1 + t**2)


def _error(method, t, max_order, **options):
    """Largest error at the output times t of a solve of `riccati` from its exact value at t[0]."""
    y0 = torch.tensor([exact(t[0].item())], dtype=F64)
    ys = physode.odeint(riccati, y0, t, method=method, options={"max_order": max_order, **options})
    return (ys[:, 0] - exact(t)).abs().max().item()


def _order(errors):
    """The observed order between the last two of errors at steps halving each time."""
    return math.log2(errors[-2] / errors[-1])


def _classical(k, implicit):
    """The k coefficients of the k-step Adams-Bashforth or (k-1)-step Adams-Moulton formula, newest
    derivative first, from y_{n+1} = y_n + h sum_j gamma_j nabla^j f by the recurrences
    gamma_m + gamma_{m-1} / 2 + ... + gamma_0 / (m + 1) = 1 (explicit; 0 for implicit, m >= 1)
    (Hairer, Norsett & Wanner, Solving ODEs I, III.1), in exact arithmetic."""
    gammas = [Fraction(1)]
    for m in range(1, k):
        gammas.append((0 if implicit else 1) - sum(gammas[m - 1 - i] / (i + 2) for i in range(m)))
    return [sum(gammas[j] * (-1) ** i * math.comb(j, i) for j in range(i, k)) for i in range(k)]


# Hairer, Norsett & Wanner, III.1, Tables 1.1 and 1.2: numerators and the common denominator
ADAMS_BASHFORTH = [([1], 1), ([3, -1], 2), ([23, -16, 5], 12), ([55, -59, 37, -9], 24)]
ADAMS_MOULTON = [([1], 1), ([1, 1], 2), ([5, 8, -1], 12), ([9, 19, -5, 1], 24)]


@pytest.mark.parametrize("implicit", [False, True])
def test_weights_on_a_uniform_grid_are_the_classical_coefficients(implicit):
    """On the nodes 0, -1, ..., -(k-1) (and 1, for the implicit formula), for k up to 12."""
    stepper = make_stepper("implicit_adams", F64, CPU, max_order=12)
    for k in range(1, 13):
        past = -torch.arange(k - implicit, dtype=F64)
        weights = stepper.weights(torch.cat([torch.ones(1, dtype=F64), past]) if implicit else past)
        expected = torch.tensor([float(c) for c in _classical(k, implicit)], dtype=F64)
        assert (weights - expected).abs().max() <= 1e-15 * expected.abs().max()
        if k <= 4:
            numerators, denominator = (ADAMS_MOULTON if implicit else ADAMS_BASHFORTH)[k - 1]
            assert torch.allclose(weights, torch.tensor(numerators, dtype=F64) / denominator, rtol=1e-15, atol=0)


def test_weights_integrate_polynomials_of_degree_below_their_number_exactly():
    """sum_j w_j p(s_j) = int_0^1 p(s) ds on arbitrary nodes: the definition of the weights."""
    stepper = make_stepper("explicit_adams", F64, CPU, max_order=6)
    generator = torch.Generator().manual_seed(1)
    for nodes in (-torch.rand(6, generator=generator, dtype=F64).cumsum(0),
                  torch.cat([torch.ones(1, dtype=F64), -torch.rand(4, generator=generator, dtype=F64).cumsum(0)])):
        weights = stepper.weights(nodes)
        for degree in range(len(nodes)):
            assert (weights * nodes**degree).sum().item() == pytest.approx(1 / (degree + 1), rel=1e-13, abs=1e-13)


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
@pytest.mark.parametrize("max_order", [1, 2, 3, 4, 5])
def test_order_on_a_uniform_grid(method, max_order):
    t = torch.tensor([T0, T1], dtype=F64)
    errors = [_error(method, t, max_order, step_size=(T1 - T0) / n) for n in (80, 160)]
    assert _order(errors) == pytest.approx(max_order, abs=0.15)


def _rough_grid(n, backwards):
    """Steps alternating h, 2h, h, ... from T0 to T1 (or back): ratios that never settle to 1."""
    steps = torch.tensor([1.0, 2.0], dtype=F64).repeat(n // 2)
    t = torch.cat([torch.zeros(1, dtype=F64), steps.cumsum(0)]) * ((T1 - T0) / steps.sum())
    return T1 - t if backwards else T0 + t


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
@pytest.mark.parametrize("max_order", [2, 3, 4])
@pytest.mark.parametrize("backwards", [False, True])
def test_order_is_kept_on_a_non_uniform_grid(method, max_order, backwards):
    """Landing on every output time, one step per interval: the weights follow the steps."""
    errors = [_error(method, _rough_grid(n, backwards), max_order, land_on_outputs=True, step_size=T1)
              for n in (80, 160)]
    assert _order(errors) == pytest.approx(max_order, abs=0.2)


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
def test_dense_output_between_the_steps(method):
    """Cubic Hermite interpolation is O(h^4), as the method at its default order 4."""
    t = torch.linspace(T0, T1, 8, dtype=F64)
    errors = [_error(method, t, 4, step_size=(T1 - T0) / n) for n in (80.5, 161)]
    assert _order(errors) == pytest.approx(4, abs=0.25)


@pytest.mark.parametrize("method, max_order, startup", [
    ("explicit_adams", 1, 0), ("explicit_adams", 2, 0), ("explicit_adams", 3, 1), ("explicit_adams", 4, 2),
    ("explicit_adams", 5, 3), ("explicit_adams", 8, 3), ("implicit_adams", 2, 0), ("implicit_adams", 3, 0),
    ("implicit_adams", 4, 1), ("implicit_adams", 5, 2), ("implicit_adams", 8, 2),
])
def test_start_up_by_rk4_steps(method, max_order, startup):
    """The first steps are RK4's until the history allows a formula of order min(max_order - 1, 4);
    then one evaluation per step (explicit) or two (PECE)."""
    t = torch.linspace(T0, T1, 11, dtype=F64)
    y0 = torch.tensor([exact(T0)], dtype=F64)
    options = {"land_on_outputs": True, "step_size": 1.0}
    adams = physode.solve(riccati, y0, t, method=method, options={**options, "max_order": max_order})
    rk4 = physode.odeint(riccati, y0, t, method="rk4", options=options)
    assert torch.allclose(adams.ys[:startup + 1], rk4[:startup + 1], rtol=1e-15, atol=0)
    assert not torch.allclose(adams.ys[startup + 1], rk4[startup + 1], rtol=1e-12, atol=0)
    per_step = 2 if method == "implicit_adams" else 1
    assert adams.stats.nfe == 1 + 4 * startup + per_step * (len(t) - 1 - startup)


def test_without_start_up_the_first_step_is_euler():
    t = torch.tensor([T0, T0 + 0.1], dtype=F64)
    y0 = torch.tensor([exact(T0)], dtype=F64)
    ys = physode.odeint(riccati, y0, t, method="explicit_adams", options={"step_size": 0.1, "max_order": 2})
    assert torch.equal(ys[1], y0 + (t[1] - t[0]) * riccati(t[0], y0))


def test_corrector_iterations_converge_to_the_implicit_formula():
    """P(EC)^m E: each further pass changes the solution less, toward the implicit formula's."""
    t = torch.tensor([T0, T1], dtype=F64)
    y0 = torch.tensor([exact(T0)], dtype=F64)
    ys = [physode.odeint(riccati, y0, t, method="fixed_adams", options={"step_size": 0.05, "corrector_iters": m})[-1]
          for m in range(1, 8)]
    changes = [(a - b).abs().item() for a, b in itertools.pairwise(ys)]
    assert all(later < 0.5 * earlier for earlier, later in itertools.pairwise(changes))
    assert changes[-1] < 1e-13


@pytest.mark.parametrize("option, value", [("max_order", 0), ("max_order", 13), ("max_order", 2.5),
                                           ("corrector_iters", 0), ("corrector_iters", 1.0)])
def test_bad_options_are_refused(option, value):
    with pytest.raises(ValueError, match=rf"options\['{option}'\]"):
        physode.odeint(riccati, torch.ones(1, dtype=F64), [0.0, 1.0], method="implicit_adams",
                       options={"step_size": 0.1, option: value})


def test_the_corrector_option_is_not_the_explicit_methods():
    with pytest.raises(ValueError, match=r"options\['corrector_iters'\].*not of 'explicit_adams'"):
        physode.odeint(riccati, torch.ones(1, dtype=F64), [0.0, 1.0], method="explicit_adams",
                       options={"step_size": 0.1, "corrector_iters": 2})


TIMES = [0.0, 0.37, 0.9, 1.5, 2.0]  # no output time near a multiple of the step from the one before


def _loss_gradients(func, y0, t, method, gradient, options):
    ys = physode.odeint(func, y0, t, method=method, gradient=gradient, options=options)
    weights = torch.linspace(0.5, 1.5, ys.numel(), dtype=F64).reshape(ys.shape)
    return torch.autograd.grad((weights * ys**2).sum(), [y0, t, *func.parameters()])


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
@pytest.mark.parametrize("land", [False, True])
def test_aca_equals_direct_and_finite_differences(method, land):
    """The history is state: replayed from it, each step gives the gradient of the discrete
    solution, for y0, the parameters and the output times, with every state kept or recomputed."""
    func = Neural()
    y0 = torch.randn(2, 3, dtype=F64, requires_grad=True)
    t = torch.tensor(TIMES, dtype=F64, requires_grad=True)
    options = {"step_size": 0.07, "land_on_outputs": land}
    direct = _loss_gradients(func, y0, t, method, "direct", options)
    for gradient in ("aca", ACA(checkpoints=3), ACA(checkpoints=3, schedule="uniform")):
        for d, a in zip(direct, _loss_gradients(func, y0, t, method, gradient, options)):
            assert (d - a).abs().max() <= 1e-10 * (1 + d.abs().max())

    def loss():
        with torch.no_grad():
            ys = physode.odeint(func, y0, t, method=method, options=options)
        return (torch.linspace(0.5, 1.5, ys.numel(), dtype=F64).reshape(ys.shape) * ys**2).sum().item()

    eps = 1e-6
    bias = func.net[2].bias
    for tensor, index, gradient in [(y0, (1, 2), direct[0]), (t, 0, direct[1]), (t, 2, direct[1]),
                                    (t, 4, direct[1]), (bias, 1, direct[-1])]:
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                tensor[index] += sign * eps
            values.append(loss())
            with torch.no_grad():
                tensor[index] -= sign * eps
        assert gradient[index].item() == pytest.approx((values[0] - values[1]) / (2 * eps), rel=1e-7, abs=1e-8)


@pytest.mark.parametrize("method", ["explicit_adams", "fixed_adams"])
def test_forward_sensitivities_match_finite_differences(method):
    func = Neural()
    y0 = torch.randn(3, dtype=F64)
    t = torch.tensor(TIMES, dtype=F64)
    options = {"step_size": 0.07, "max_order": 3}
    direction = torch.randn(1, 3, dtype=F64)
    weight = func.net[0].weight
    weight_direction = torch.randn(1, *weight.shape, dtype=F64)
    sensitivity = physode.jvp(func, y0, t, direction, {"net.0.weight": weight_direction}, method=method,
                              options=options)
    assert torch.equal(sensitivity.ys, physode.odeint(func, y0, t, method=method, options=options))
    eps = 1e-6
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            weight += sign * eps * weight_direction[0]
            values.append(physode.odeint(func, y0 + sign * eps * direction[0], t, method=method, options=options))
            weight -= sign * eps * weight_direction[0]
    difference = (values[0] - values[1]) / (2 * eps)
    assert (sensitivity.tangents[0] - difference).abs().max() < 1e-8 * (1 + difference.abs().max())


def test_fixed_adams_is_torchdiffeqs_older_name_for_implicit_adams():
    t = torch.tensor([T0, T1], dtype=F64)
    y0 = torch.tensor([exact(T0)], dtype=F64)
    fixed, implicit = (physode.odeint(riccati, y0, t, method=method, options={"step_size": 0.1})
                       for method in ("fixed_adams", "implicit_adams"))
    assert torch.equal(fixed, implicit)


@pytest.mark.parametrize("method", ["explicit_adams", "implicit_adams"])
def test_aca_with_constant_y0_and_times_differentiates_the_parameters(method):
    """The history's times are then constants of the replay: only the parameters get a gradient."""
    func = Neural()
    y0, t = torch.randn(2, 3, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    grads = {}
    for gradient in ("aca", "direct"):
        ys = physode.odeint(func, y0, t, method=method, gradient=gradient, options={"step_size": 0.1})
        grads[gradient] = torch.autograd.grad(ys.square().sum(), list(func.parameters()))
    for a, b in zip(grads["aca"], grads["direct"]):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
