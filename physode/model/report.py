"""How well the data pin down each fitted physical parameter: Gauss-Newton standard errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..series import dataset


def parameter_report(system, estimates, data, solver: dict, relative_step: float = 1e-4):
    """A pandas DataFrame of the fitted physical parameters with approximate standard errors.

    With r the residuals (prediction - observation) over every observed entry and J their
    Jacobian with respect to the unknowns (every free physical parameter entry and every fitted
    initial-state entry), the Gauss-Newton (Laplace) covariance is s^2 (J^T J)^-1 with
    s^2 = |r|^2 / (n - p) (Bates & Watts, Nonlinear Regression Analysis, 1988, 2.3). The learned
    terms are held at their fitted values, so the errors are conditional on them. J is taken by
    central differences of relative step `relative_step`, each solve with the `solver` settings
    (method, rtol, atol, options, gradient) and without a graph, so that the Jacobian is that of
    the model as fitted; where those tolerances are loose, pass tighter ones (FitResult.report).
    """
    with torch.no_grad():
        columns, labels = _jacobian(system, estimates, data, solver, relative_step)
    residual = columns.pop("residual")
    unknowns = torch.stack(list(columns.values()), dim=1) if columns else residual.new_zeros(residual.numel(), 0)
    n, p = unknowns.shape
    if n <= p:
        raise ValueError(f"{n} observed values cannot determine {p} unknowns")
    variance = residual.square().sum() / (n - p)
    information = unknowns.T @ unknowns
    covariance = variance * torch.linalg.pinv(information)
    errors = covariance.diagonal().clamp_min(0).sqrt()
    parameters = type(system).physical_parameters()
    rows = []
    for (name, index), error in zip(labels, errors[: len(labels)]):
        value = getattr(system, name).detach().reshape(-1)[index].item()
        label = name if getattr(system, name).numel() == 1 else f"{name}[{index}]"
        rows.append({"parameter": label, "value": value, "std_error": error.item(),
                     "relative_error_%": 100 * error.item() / abs(value) if value else np.inf,
                     "units": parameters[name].units or ""})
    return pd.DataFrame(rows).set_index("parameter")


def _jacobian(system, estimates, data, solver, relative_step) -> tuple[dict[str, Tensor], list[tuple[str, int]]]:
    """Residual vector and its central-difference derivative columns, physical parameters first."""
    reference = next(iter(system.parameters()))
    times, observed = dataset.observations(data, system, reference.dtype, reference.device)
    start = estimates()

    def residual(initial: dict[str, Tensor]) -> Tensor:
        predicted = system.integrate(initial, times, **solver)
        return torch.cat([(predicted[n] - v)[torch.isfinite(v)] for n, v in observed.items()])

    columns = {"residual": residual(start)}
    labels = []
    for name, parameter in type(system).physical_parameters().items():
        if parameter.fixed:
            continue
        value = getattr(system, name).detach().clone()
        for index in range(value.numel()):
            step = relative_step * max(abs(value.reshape(-1)[index].item()), 1e-8)
            results = []
            for sign in (1, -1):
                moved = value.clone().reshape(-1)
                moved[index] += sign * step
                setattr(system, name, moved.reshape(value.shape))
                results.append(residual(start))
            setattr(system, name, value)
            columns[f"{name}[{index}]"] = (results[0] - results[1]) / (2 * step)
            labels.append((name, index))
    rows_of_series = _series_of_rows(observed)
    for name, free in estimates.free_entries().items():
        flat_free = free.reshape(free.shape[0], -1)
        for component in range(flat_free.shape[1]):
            series = flat_free[:, component]
            if not bool(series.any()):
                continue
            scale = start[name].reshape(free.shape[0], -1)[:, component].abs().clamp_min(1.0)
            step = relative_step * scale * series
            results = []
            for sign in (1, -1):
                moved = {k: v.clone() for k, v in start.items()}
                moved[name].reshape(free.shape[0], -1)[:, component] += sign * step
                results.append(residual(moved))
            derivative = (results[0] - results[1]) / (2 * step.clamp_min(torch.finfo(step.dtype).tiny))[rows_of_series]
            for s in torch.nonzero(series).flatten().tolist():
                columns[f"{name}[{s}, {component}]"] = torch.where(rows_of_series == s, derivative, 0.0)
    return columns, labels


def _series_of_rows(observed: dict[str, Tensor]) -> Tensor:
    """For each residual row (observed entry, in the order `residual` flattens them), its series."""
    rows = []
    for values in observed.values():
        index = torch.arange(values.shape[0], device=values.device).reshape(-1, *([1] * (values.ndim - 1)))
        rows.append(index.expand(values.shape)[torch.isfinite(values)])
    return torch.cat(rows)
