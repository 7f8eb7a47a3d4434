"""The ODE-RNN (Rubanova, Chen & Duvenaud, NeurIPS 2019, Algorithm 1): a GRU whose hidden state
follows a learned ODE between observations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_count
from ..grad import GradientMethod
from ..series.irregular import IrregularBatch
from ..solve import FIXED_STEP_METHODS
from .dynamics import LatentDynamics
from .gru import make_cell


class ODERNN(nn.Module):
    """h' = f_theta(h) between observation times; at each time, h <- cell([x * m, m], h) for the
    series that observe something there (mask m), unchanged for the others.

    `cell`: "gru" (nn.GRUCell, state h of `hidden` entries) or "gaussian" (GaussianGRUCell with
    gate MLPs of `cell_units`, Rubanova et al.'s code: state [mean, std] of 2 * `hidden` entries,
    the ODE moving the mean only). `dynamics`: the hidden ODE, a LatentDynamics System (MLP with
    `units`); it is integrated with `method` (fixed-step methods take steps of the batch's span /
    `steps`, as Rubanova et al. do with Euler and 50) or adaptively with `rtol`, `atol`;
    `gradient` as in physode.odeint.
    """

    def __init__(self, features: int, hidden: int = 20, *, units: Sequence[int] = (100,), cell: str = "gru",
                 cell_units: int = 100, method: str = "euler", steps: int = 50, rtol: float = 1e-3, atol: float = 1e-4,
                 gradient: str | GradientMethod = "direct", dtype: torch.dtype | None = None, device=None):
        super().__init__()
        for name, value in (("features", features), ("hidden", hidden), ("steps", steps), ("cell_units", cell_units)):
            check_count(name, value)
        self.features, self.hidden = features, hidden
        self.dynamics = LatentDynamics.of(hidden, tuple(units), dtype=dtype, device=device)
        self.cell = make_cell(cell, 2 * features, hidden, cell_units).to(dtype=dtype or torch.get_default_dtype(),
                                                                           device=device)
        self.state_size = hidden if cell == "gru" else 2 * hidden
        self.method, self.steps, self.rtol, self.atol, self.gradient = method, steps, rtol, atol, gradient

    def forward(self, batch: IrregularBatch, *, backward: bool = False, until: float | Tensor | None = None,
                h0: Tensor | None = None, sequence: bool = False) -> Tensor:
        """Run over the batch's times, forward or `backward` in time, from `h0` (default zeros).

        Returns the hidden state after the last update, evolved on to the time `until` if given
        (series, state_size); or, with `sequence`, the hidden state after the update at every time
        (series, T, state_size), in increasing time order.
        """
        if batch.features != self.features:
            raise ValueError(f"the batch has {batch.features} features; this ODE-RNN takes {self.features}")
        times = batch.times
        h = batch.values.new_zeros(batch.series, self.state_size) if h0 is None else h0
        span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
        solver = {"method": self.method, "gradient": self.gradient, "rtol": self.rtol, "atol": self.atol,
                  "options": {"step_size": span / self.steps} if self.method in FIXED_STEP_METHODS and span > 0 else None}
        order = range(len(times) - 1, -1, -1) if backward else range(len(times))
        observed = batch.observed
        states, previous = [], None
        for k in order:
            if previous is not None:
                h = self._evolve(h, times[previous], times[k], solver)
            update = self.cell(torch.cat([batch.values[:, k] * batch.mask[:, k], batch.mask[:, k]], dim=1), h)
            h = torch.where(observed[:, k, None], update, h)
            states.append(h)
            previous = k
        if sequence:
            return torch.stack(states[::-1] if backward else states, dim=1)
        if until is not None and previous is not None:
            until = torch.as_tensor(until, dtype=times.dtype, device=times.device)
            if bool(until != times[previous]):
                h = self._evolve(h, times[previous], until, solver)
        return h

    def _evolve(self, h: Tensor, t0: Tensor, t1: Tensor, solver: dict) -> Tensor:
        moving, fixed = h.split([self.hidden, self.state_size - self.hidden], dim=-1)
        moved = self.dynamics.integrate({"z": moving}, torch.stack([t0, t1]), **solver)["z"][:, -1]
        return torch.cat([moved, fixed], dim=-1)

