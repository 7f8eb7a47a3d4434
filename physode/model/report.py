"""How well the data pin down each fitted physical parameter: Gauss-Newton standard errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..series import dataset
from .residuals import SystemResiduals


def parameter_report(system, estimates, data, solver: dict):
    """A pandas DataFrame of the fitted physical parameters with approximate standard errors.

    With r the residuals (prediction - observation) over the n observed entries and J their
    Jacobian with respect to the p unknowns (every free physical parameter entry and every fitted
    initial-state entry), the Gauss-Newton (Laplace) covariance is s^2 (J^T J)^-1 with
    s^2 = |r|^2 / (n - p) (Bates & Watts, Nonlinear Regression Analysis, 1988, 2.3), taken on
    the parameters' unconstrained scale and carried to their physical values by the derivative
    of the constraint transform (the delta method). The learned terms are held at their fitted
    values, so the errors are conditional on them. J is exact for the discrete solution (forward
    sensitivities, physode.jvp), from solves with the `solver` settings (method, rtol, atol,
    options); where those tolerances are loose, pass tighter ones (FitResult.report).
    """
    declared = {name: p for name, p in type(system).physical_parameters().items() if not p.fixed}
    if not declared:
        raise ValueError(f"{type(system).__name__} has no free Parameter: there is no physical parameter to report on")
    reference = system.get_parameter(next(iter(declared.values())).raw_name)
    times, observed = dataset.observations(data, system, reference.dtype, reference.device)
    unknowns = [(p.raw_name, system.get_parameter(p.raw_name)) for p in declared.values()]
    residuals = SystemResiduals(system, unknowns, estimates, None, times, observed, None, [(0, len(times) - 1)], 0.0,
                                solver, lambda: None)
    with torch.no_grad():
        cost, normal = residuals.evaluate(jacobian=True)
    n, p = residuals.observations, residuals.global_columns + residuals.free_local_unknowns
    if n <= p:
        raise ValueError(f"{n} observed values cannot determine {p} unknowns")
    covariance = (2.0 * cost / (n - p)) * normal.global_inverse()
    raw_errors = covariance.diagonal().clamp_min(0).sqrt()
    rows, offset = [], 0
    for name, parameter in declared.items():
        raw = system.get_parameter(parameter.raw_name).detach()
        slope = torch.func.jacfwd(lambda u: parameter.to_physical(u).reshape(-1))(raw).reshape(raw.numel(), -1).diagonal()
        value = getattr(system, name).detach().reshape(-1)
        for index in range(raw.numel()):
            error = float(slope[index].abs() * raw_errors[offset + index])
            label = name if raw.numel() == 1 else f"{name}[{index}]"
            entry = value[index].item()
            rows.append({"parameter": label, "value": entry, "std_error": error,
                         "relative_error_%": 100 * error / abs(entry) if entry else np.inf,
                         "units": parameter.units or ""})
        offset += raw.numel()
    return pd.DataFrame(rows).set_index("parameter")
