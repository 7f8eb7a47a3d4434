"""options['compile']: compiled steps give the eager solution and gradients, compile once per func
and shape, report graph breaks and fall back to eager with a warning.

The fast tests trace with torch.compile's "eager" backend (Dynamo's graphs run by the eager
kernels: the wiring without the minutes of code generation); the slow one compiles with Inductor.
"""

import warnings

import pytest
import torch
from torch._dynamo.utils import counters

import physode
from problems import F64, Neural

EAGER = {"backend": "eager"}
T = torch.linspace(0.0, 1.0, 6, dtype=F64)


def _solve_and_grad(func, y0, compile, gradient="aca", method="dopri5"):
    y0 = y0.detach().requires_grad_(True)
    solution = physode.solve(func, y0, T, method=method, gradient=gradient, rtol=1e-8, atol=1e-8,
                             options={"compile": compile})
    grads = torch.autograd.grad(solution.ys.square().sum(), [y0, *func.parameters()])
    return solution, grads


@pytest.mark.parametrize("gradient", ["aca", "direct"])
@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3"])
def test_compiled_steps_give_the_eager_solution_gradients_and_counts(gradient, method):
    torch.manual_seed(0)
    func, y0 = Neural(), torch.randn(5, 3, dtype=F64)
    eager, eager_grads = _solve_and_grad(func, y0, False, gradient, method)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled, compiled_grads = _solve_and_grad(func, y0, EAGER, gradient, method)
    assert not [w for w in caught if "options['compile']" in str(w.message)]  # no graph break, no fallback
    assert torch.allclose(compiled.ys, eager.ys, rtol=0, atol=1e-13)
    for a, b in zip(compiled_grads, eager_grads):
        assert torch.allclose(a, b, rtol=1e-11, atol=1e-13)
    assert compiled.stats == eager.stats  # the evaluations of a compiled step are counted as the eager ones


def test_a_second_solve_of_the_same_func_and_shapes_compiles_nothing():
    torch.manual_seed(1)
    func, y0 = Neural(), torch.randn(4, 3, dtype=F64)
    _solve_and_grad(func, y0, EAGER)
    graphs = counters["stats"]["unique_graphs"]
    _solve_and_grad(func, y0 + 0.1, EAGER)
    assert counters["stats"]["unique_graphs"] == graphs


class _Breaking(Neural):
    """A vector field with Python control flow on a tensor's value: a graph break."""

    def forward(self, t, y):
        return super().forward(t, y) * (1.0 if y.sum().item() > -1e9 else 0.0)


@torch._dynamo.register_backend(name="physode_test_failing")
def _failing_backend(graph, example_inputs):
    raise RuntimeError("this backend cannot compile anything")


@pytest.mark.parametrize("field, compile, message", [
    (_Breaking, EAGER, "breaks the compiled graph, so each step runs as several graphs"),
    (Neural, {"backend": "physode_test_failing"}, "could not be compiled, so it runs eagerly: .*cannot compile"),
])
def test_a_func_that_breaks_the_graph_or_cannot_be_compiled_is_warned_of_and_still_solved(field, compile, message):
    torch.manual_seed(2)
    func, y0 = field(), torch.randn(2, 3, dtype=F64)
    eager, _ = _solve_and_grad(func, y0, False)
    with pytest.warns(UserWarning, match=message):
        compiled, _ = _solve_and_grad(func, y0, compile)
    assert torch.allclose(compiled.ys, eager.ys, rtol=0, atol=1e-13)


def test_compiled_tuple_state_and_forward_sensitivities():
    """A tuple state, and the tangent sweep of `jacobian` (which steps its linearised func eagerly)."""
    y0 = (torch.tensor([1.0, 0.5], dtype=F64), torch.tensor([0.0, -1.0], dtype=F64))
    xs, vs = physode.odeint(lambda t, s: (s[1], -s[0]), y0, T, rtol=1e-10, atol=1e-10, params=(),
                            options={"compile": EAGER})
    assert torch.allclose(xs, y0[0] * torch.cos(T)[:, None] + y0[1] * torch.sin(T)[:, None], atol=1e-9)
    torch.manual_seed(3)
    func, z0 = Neural(), torch.randn(3, dtype=F64)
    exact = physode.jacobian(func, z0, T, rtol=1e-9, atol=1e-9)
    compiled = physode.jacobian(func, z0, T, rtol=1e-9, atol=1e-9, options={"compile": EAGER})
    assert torch.allclose(compiled.y0, exact.y0, rtol=0, atol=1e-13)


@pytest.mark.parametrize("options, message", [
    ({"compile": "yes"}, r"options\['compile'\] must be True, False or a dict"),
    ({"compile": {"fullgraph": "True"}}, r"options\['compile'\] must be True, False or a dict"),
])
def test_bad_compile_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        physode.odeint(Neural(), torch.zeros(3, dtype=F64), T, options=options)


@pytest.mark.parametrize("method", ["alf", "implicit_adams"])
def test_compile_is_for_runge_kutta_methods(method):
    options = {"compile": True} if method == "alf" else {"compile": True, "step_size": 0.1}
    with pytest.raises(ValueError, match=f"compiles Runge-Kutta steps; method '{method}' is not one"):
        physode.odeint(Neural(), torch.zeros(3, dtype=F64), T, method=method, options=options)


@pytest.mark.slow
def test_inductor_compiled_steps_give_the_eager_solution_and_gradients():
    """Inductor's generated kernels (C++ on the CPU): the eager answer to round-off, and ACA's
    gradients equal direct's, in float32 as a neural ODE is fitted."""
    torch.manual_seed(4)
    func, y0 = Neural(dtype=torch.float32), torch.randn(16, 3)
    results = {}
    for gradient in ("aca", "direct"):
        for compile in (False, True):
            y = y0.clone().requires_grad_(True)
            solution = physode.solve(func, y, T.float(), gradient=gradient, rtol=1e-5, atol=1e-6,
                                     options={"compile": compile})
            grads = torch.autograd.grad(solution.ys.square().sum(), [y, *func.parameters()])
            results[gradient, compile] = solution, grads
    eager, _ = results["aca", False]
    for (gradient, compile), (solution, grads) in results.items():
        assert solution.stats.accepted == eager.stats.accepted
        assert torch.allclose(solution.ys, eager.ys, rtol=1e-5, atol=1e-6)
        for a, b in zip(grads, results["direct", False][1]):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_compile_is_refused_with_torchdiffeqs_adjoint():
    with pytest.raises(ValueError, match="gradient='adjoint' steps with torchdiffeq's solver"):
        physode.odeint(Neural(), torch.zeros(3, dtype=F64), T, gradient="adjoint", options={"compile": True})


class _Tally:
    calls = 0


class _Counting(Neural):
    """A vector field that counts its calls in a Python integer of another object: each value is a
    new graph."""

    def __init__(self):
        super().__init__()
        self.tally = _Tally()

    def forward(self, t, y):
        self.tally.calls += 1
        return super().forward(t, y)


def test_a_func_compiled_again_at_every_call_is_given_up_for_eager():
    torch.manual_seed(5)
    func, y0, t = _Counting(), torch.randn(2, 3, dtype=F64), torch.linspace(0.0, 20.0, 3, dtype=F64)
    with pytest.warns(UserWarning, match="compiled 8 more times for the same shapes and modes, so it runs eagerly"):
        compiled = physode.odeint(func, y0, t, rtol=1e-8, atol=1e-8, options={"compile": EAGER})
    graphs = counters["stats"]["unique_graphs"]
    again = physode.odeint(func, y0, t, rtol=1e-8, atol=1e-8, options={"compile": EAGER})
    assert counters["stats"]["unique_graphs"] == graphs and torch.equal(again, compiled)


def test_torchs_limit_of_compiled_versions_turns_eager_with_a_warning():
    torch.manual_seed(6)
    func, y0 = Neural(), torch.randn(7, 3, dtype=F64)  # a shape compiled for in no other test
    eager, eager_grads = _solve_and_grad(func, y0, False)
    _solve_and_grad(Neural(), y0[:1], EAGER)  # the step compiled at least once in this process
    name = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    with torch._dynamo.config.patch(**{name: 1}), \
            pytest.warns(UserWarning, match="torch's limit of 1 compiled versions of a step per process is reached"):
        compiled, compiled_grads = _solve_and_grad(func, y0, EAGER)
    assert torch.allclose(compiled.ys, eager.ys, rtol=0, atol=1e-13)
    for a, b in zip(compiled_grads, eager_grads):
        assert torch.allclose(a, b, rtol=1e-11, atol=1e-13)


class _Slotted:
    """A vector field that cannot be weakly referenced."""

    __slots__ = ()

    def __call__(self, t, y):
        return -y


def test_a_func_that_cannot_be_weakly_referenced_is_compiled():
    y0 = torch.tensor([1.0, 2.0], dtype=F64)
    ys = physode.odeint(_Slotted(), y0, T, rtol=1e-10, atol=1e-10, params=(), options={"compile": EAGER})
    assert torch.allclose(ys, y0 * torch.exp(-T)[:, None], atol=1e-9)


def test_a_mode_or_backend_torch_does_not_know_is_named():
    with pytest.raises(ValueError, match=r"options\['compile'\] = \{'mode': 'fastest'\}"):
        physode.odeint(Neural(), torch.zeros(3, dtype=F64), T, options={"compile": {"mode": "fastest"}})
