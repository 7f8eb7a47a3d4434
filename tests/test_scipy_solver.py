"""method="scipy_solver" against scipy.integrate.solve_ivp called directly."""

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import physode

F64 = torch.float64


def pendulum(t, y):
    return torch.stack([y[1], -torch.sin(y[0]) - 0.1 * t * y[1]])


def pendulum_numpy(t, y):
    return [y[1], -np.sin(y[0]) - 0.1 * t * y[1]]


@pytest.mark.parametrize("solver", ["RK45", "DOP853", "Radau", "BDF", "LSODA"])
@pytest.mark.parametrize("t_end", [4.0, -4.0])
def test_scipy_solver_is_solve_ivp(solver, t_end):
    t = torch.linspace(0.0, t_end, 9, dtype=F64)
    y0 = torch.tensor([1.0, 0.0], dtype=F64)
    sol = physode.solve(pendulum, y0, t, method="scipy_solver", rtol=1e-7, atol=1e-9, options={"solver": solver})
    ref = solve_ivp(pendulum_numpy, (0.0, t_end), [1.0, 0.0], t_eval=t.numpy(), method=solver, rtol=1e-7, atol=1e-9)
    assert np.abs(sol.ys.numpy() - ref.y.T).max() < 1e-13
    assert sol.stats.nfe >= ref.nfev  # solve_ivp leaves out the finite-difference Jacobians of Radau and BDF


def test_scipy_solver_keeps_dtype_shape_and_tuple_states():
    y0 = (torch.ones(2, 3, dtype=torch.float32), torch.zeros(1, dtype=torch.float32))
    t = torch.tensor([0.0, 0.5, 1.0])
    ys = physode.odeint(lambda t, y: (-y[0], y[0].sum(0, keepdim=True)[:, :1].reshape(1)), y0, t, method="scipy_solver")
    assert ys[0].shape == (3, 2, 3) and ys[1].shape == (3, 1) and ys[0].dtype == torch.float32
    assert torch.allclose(ys[0][-1], torch.full((2, 3), np.exp(-1.0), dtype=torch.float32), rtol=1e-5)


def test_a_gradient_asked_of_scipy_solver_says_which_methods_give_one():
    y0 = torch.tensor([1.0, 0.0], dtype=F64, requires_grad=True)
    ys = physode.odeint(pendulum, y0, torch.tensor([0.0, 1.0], dtype=F64), method="scipy_solver")
    with pytest.raises(RuntimeError, match="gives no gradient; use a physode method"):
        ys.sum().backward()
    with pytest.raises(ValueError, match="solves forward through physode.odeint and physode.solve only"):
        physode.jacobian(pendulum, y0.detach(), torch.tensor([0.0, 1.0], dtype=F64), method="scipy_solver")


def test_scipy_solver_options_are_checked():
    y0, t = torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.raises(ValueError, match=r"options\['solver'\] must be one of RK45"):
        physode.odeint(pendulum, y0, t, method="scipy_solver", options={"solver": "Euler"})
    with pytest.raises(ValueError, match=r"options\['min_step'\] is an option of scipy's LSODA only"):
        physode.odeint(pendulum, y0, t, method="scipy_solver", options={"solver": "RK45", "min_step": 0.1})
    with pytest.raises(ValueError, match=r"unknown options \['step_size'\] for method='scipy_solver'"):
        physode.odeint(pendulum, y0, t, method="scipy_solver", options={"step_size": 0.1})
    with pytest.raises(physode.SolverError, match="scipy's RK45 failed"):
        physode.odeint(lambda t, y: y * y, torch.ones(1, dtype=F64), torch.tensor([0.0, 2.0], dtype=F64),
                       method="scipy_solver", options={"solver": "RK45"})
