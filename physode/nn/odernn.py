"""The ODE-RNN (Rubanova, Chen & Duvenaud, NeurIPS 2019, Algorithm 1): a GRU whose hidden state
follows a learned ODE between observations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_count
from ..grad import Direct, GradientMethod
from ..series.irregular import IrregularBatch
from ..solve import FIXED_STEP_METHODS, LAND_TOLERANCE, TABLEAUS, RungeKutta, Span
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

    With a fixed-step Runge-Kutta method (euler, midpoint, heun2, heun3, rk4, rk38) and gradient
    "direct" (or Direct()), the steps between two times are taken here by physode's Runge-Kutta
    stepper on the step times physode.odeint takes, so the states are the same and autograd runs
    through the steps, without a solver call (and its argument checks) per interval; a non-finite
    state is not stopped there but reaches the output. Every other method and gradient calls
    physode.odeint once per interval.
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
        h = batch.values.new_zeros(batch.series, self.state_size) if h0 is None else h0
        times = batch.times.to(h.dtype)  # the solver's times are in the state's dtype
        evolve = self._evolution(times, h)
        inputs = torch.cat([batch.values * batch.mask, batch.mask], dim=2)
        order = range(len(times) - 1, -1, -1) if backward else range(len(times))
        observed = batch.observed
        states, previous = [], None
        for k in order:
            if previous is not None:
                h = evolve(h, times[previous], times[k])
            h = torch.where(observed[:, k, None], self.cell(inputs[:, k], h), h)
            states.append(h)
            previous = k
        if sequence:
            return torch.stack(states[::-1] if backward else states, dim=1)
        if until is not None and previous is not None:
            until = torch.as_tensor(until, dtype=times.dtype, device=times.device)
            if bool(until != times[previous]):
                h = evolve(h, times[previous], until)
        return h

    def _evolution(self, times: Tensor, h: Tensor):
        """evolve(h, t0, t1): h at t1 from h at t0, its first `hidden` entries moved by the ODE."""
        span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
        tableau = TABLEAUS.get(self.method)
        if span > 0 and tableau is not None and not tableau.adaptive and _is_direct(self.gradient):
            stepper = RungeKutta(tableau, h.dtype, h.device)
            return self._moving(lambda z, t0, t1: self._fixed_steps(stepper, span / self.steps, z, t0, t1))
        solver = {"method": self.method, "gradient": self.gradient, "rtol": self.rtol, "atol": self.atol,
                  "options": {"step_size": span / self.steps} if self.method in FIXED_STEP_METHODS and span > 0 else None}
        return self._moving(lambda z, t0, t1: self.dynamics.integrate({"z": z}, torch.stack([t0, t1]), **solver)["z"][:, -1])

    def _moving(self, move):
        def evolve(h: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
            moving, fixed = h.split([self.hidden, self.state_size - self.hidden], dim=-1)
            return torch.cat([move(moving, t0, t1), fixed], dim=-1)

        return evolve

    def _fixed_steps(self, stepper: RungeKutta, step: float, z: Tensor, t0: Tensor, t1: Tensor) -> Tensor:
        """z at t1 from z at t0 by steps of `step`, on physode.odeint's step times (physode.solve.loop
        and Clock): each step ends at t0 + (a - float(t0)) with a advanced by `step` in float arithmetic,
        and the step that comes within LAND_TOLERANCE of t1 ends on t1."""
        def field(t, y):
            return self.dynamics(t, (y,))[0]

        a0, a1 = float(t0), float(t1)
        direction = 1.0 if a1 >= a0 else -1.0
        a, start, carry = a0, t0, None
        while True:
            last = abs(a1 - a) <= step * (1 + LAND_TOLERANCE)
            if last:
                end = t1
            else:
                a += direction * step
                end = t0 + (a - a0)
            z, ks = stepper.step(field, Span(start, end, end - start), z, carry)
            if last:
                return z
            start, carry = end, stepper.carry(ks)


def _is_direct(gradient: str | GradientMethod) -> bool:
    return isinstance(gradient, Direct) if not isinstance(gradient, str) else gradient == "direct"
