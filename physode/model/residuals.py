"""The residuals of a System's fit and their exact Jacobian, for Levenberg-Marquardt and for the
standard errors of `report()`.

The residual vector r holds, for every observed entry, sqrt(w_t / W) (prediction - observation)
(w_t the time weight, W the sum of the weights over the observed entries), so that |r|^2 is the
fit's mean squared error; with multiple shooting it also holds sqrt(continuity / M) times the
mismatch of each window's end with the next window's start (M entries), the fit's continuity
penalty. The unknowns are global (the chosen parameters of the System, on their unconstrained
scale) or local to one series (its fitted initial-state entries and its shooting nodes), so the
Jacobian has the block-arrow structure of physode.training.NormalEquations. Its columns come
from forward sensitivities (physode.jvp): one sweep per window with one direction per global
unknown and per state component, the series being independent of each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..odeint import odeint
from ..sensitivity import jvp
from ..solve import SolverError
from ..training import Group, NormalEquations
from .estimates import InitialState, ShootingNodes


class SystemResiduals:
    """The least-squares problem of fitting `system` (a physode.training.LeastSquaresProblem).

    `unknowns`: the global unknowns, (name, parameter) pairs of the system; `estimates` and
    `nodes` hold the local ones. `windows`: (first, last) time indices of each shooting window
    (one window without shooting). `solver`: method, rtol, atol and options of the solves;
    `counted()` is called once per solve. Over the ranks of `group`, each rank integrates its share
    of the series (Group.positions) and the normal equations are summed over the ranks.
    """

    def __init__(self, system: nn.Module, unknowns: Sequence[tuple[str, Tensor]], estimates: InitialState,
                 nodes: ShootingNodes | None, times: Tensor, observed: Mapping[str, Tensor], weight: Tensor | None,
                 windows: Sequence[tuple[int, int]], continuity: float, solver: Mapping, counted: Callable[[], None],
                 group: Group = Group()):
        self.system, self.estimates, self.nodes = system, estimates, nodes
        self.unknowns = list(unknowns)
        self.names = system.state_names
        self.times, self.observed, self.windows = times, observed, list(windows)
        self.solver = {key: solver[key] for key in ("method", "rtol", "atol", "options") if key in solver}
        self.counted = counted
        self.shapes = {name: tuple(state.shape) for name, state in type(system).states().items()}
        self.sizes = {name: math.prod(shape) for name, shape in self.shapes.items()}
        free = estimates.free_entries()
        self.series = next(iter(free.values())).shape[0]
        self.group, self.rows = group, group.positions(self.series, times.device)  # this rank's series
        # the state components fitted in at least one series: the local initial-state columns
        self.components = {name: torch.nonzero(free[name].reshape(self.series, -1).any(0)).flatten() for name in self.names}
        self.free = {name: free[name].reshape(self.series, -1)[:, self.components[name]] for name in self.names}
        self.initial_columns = sum(len(c) for c in self.components.values())
        self.state_size = sum(self.sizes.values())
        self.global_columns = sum(p.numel() for _, p in self.unknowns)
        count = sum(int(torch.isfinite(v).sum()) for v in observed.values())
        weights = torch.ones_like(times) if weight is None else weight
        total = sum((torch.isfinite(v).to(times.dtype) * weights.reshape(1, -1, *[1] * (v.ndim - 2))).sum()
                    for v in observed.values())
        self.scale = (weights / total).sqrt()  # per time point
        self.observations = count
        mismatches = self.series * (len(self.windows) - 1) * self.state_size
        self.continuity = math.sqrt(continuity / mismatches) if mismatches else 0.0

    @property
    def local_columns(self) -> int:
        """Local unknowns per series: its fitted initial-state components and its shooting nodes."""
        return self.initial_columns + (len(self.windows) - 1) * self.state_size

    @property
    def free_local_unknowns(self) -> int:
        """How many local unknowns are fitted (entries of series where a component is not fitted do not count)."""
        return sum(int(f.sum()) for f in self.free.values()) + (len(self.windows) - 1) * self.series * self.state_size

    # --- the unknowns as one vector [global, local of series 1, ..., local of series S] ----------
    def position(self) -> Tensor:
        parts = [p.detach().reshape(-1) for _, p in self.unknowns]
        return torch.cat([*parts, self._local().reshape(-1)])

    def set_position(self, x: Tensor) -> None:
        with torch.no_grad():
            offset = 0
            for _, p in self.unknowns:
                p.copy_(x[offset:offset + p.numel()].reshape(p.shape))
                offset += p.numel()
            local = x[offset:].reshape(self.series, -1)
            offset = 0
            for name in self.names:
                count = len(self.components[name])
                getattr(self.estimates, name).reshape(self.series, -1)[:, self.components[name]] = \
                    local[:, offset:offset + count]
                offset += count
            if self.nodes is not None:
                starts = local[:, offset:].reshape(self.series, len(self.windows) - 1, self.state_size)
                for name, piece in zip(self.names, starts.split(list(self.sizes.values()), dim=-1)):
                    getattr(self.nodes, name).copy_(piece.reshape(getattr(self.nodes, name).shape))

    def _local(self) -> Tensor:
        parts = [getattr(self.estimates, name).detach().reshape(self.series, -1)[:, self.components[name]]
                 for name in self.names]
        if self.nodes is not None:
            nodes = torch.cat([getattr(self.nodes, name).detach().reshape(self.series, len(self.windows) - 1, -1)
                               for name in self.names], dim=-1)
            parts.append(nodes.reshape(self.series, -1))
        return torch.cat(parts, dim=1)

    # --- residuals and Jacobian ------------------------------------------------------------------
    def evaluate(self, jacobian: bool) -> tuple[float, NormalEquations | None]:
        """(1/2 |r|^2, the normal equations where `jacobian`) at the current unknowns, over every rank's series."""
        error = None
        try:
            residual, global_part, local_part = self.residuals(jacobian)
        except SolverError as failure:
            error = failure
        self.group.agree(error, self.times.device)
        cost = self.group.total(0.5 * float(residual.square().sum()), self.times)
        if not jacobian or not math.isfinite(cost):
            return cost, None
        return cost, NormalEquations.of(residual, global_part, local_part).summed(self.group, self.rows, self.series)

    def residuals(self, jacobian: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """r (series, rows) of this rank's series, and where `jacobian` its global (series, rows, G)
        and local (series, rows, L) columns."""
        rows, global_rows, local_rows = [], [], []
        last = len(self.windows) - 1
        n = len(self.rows)
        for k, (first, final) in enumerate(self.windows):
            start = self.estimates(self.rows) if k == 0 else self.nodes(self.rows, k)
            y0 = tuple(start[name] for name in self.names)
            times = self.times[first:final + 1]
            self.counted()
            if jacobian:
                directions = self._directions(k)
                solution = jvp(self.system, y0, times, directions[0], directions[1], **self.solver)
                ys, dys = solution.ys, solution.tangents
            else:
                with torch.no_grad():
                    ys = odeint(self.system, y0, times, gradient="direct", **self.solver)
                dys = None
            stop = len(times) if k == last else len(times) - 1
            for index, name in enumerate(self.names):
                if name not in self.observed:
                    continue
                target = self.observed[name][self.rows, first:first + stop].reshape(n, stop, -1)
                mask = torch.isfinite(target)
                scale = self.scale[first:first + stop].reshape(1, -1, 1) * mask
                predicted = ys[index][:stop].movedim(0, 1).reshape(n, stop, -1)
                rows.append(((predicted - target.nan_to_num()) * scale).reshape(n, -1))
                if jacobian:
                    tangent = dys[index][:, :stop].movedim(0, -1).movedim(0, 1)  # (series, time, *shape, P)
                    tangent = tangent.reshape(n, stop, -1, tangent.shape[-1]) * scale.unsqueeze(-1)
                    self._columns(tangent.reshape(n, -1, tangent.shape[-1]), k, global_rows, local_rows)
            if k < last:
                following = self.nodes(self.rows, k + 1)
                end = torch.cat([ys[i][-1].reshape(n, -1) for i in range(len(self.names))], dim=1)
                start_next = torch.cat([following[name].reshape(n, -1) for name in self.names], dim=1)
                rows.append(self.continuity * (end - start_next.detach()))
                if jacobian:
                    tangent = torch.cat([dys[i][:, -1].reshape(dys[i].shape[0], n, -1)
                                         for i in range(len(self.names))], dim=2).permute(1, 2, 0)
                    self._columns(self.continuity * tangent, k, global_rows, local_rows)
                    eye = torch.eye(self.state_size, dtype=end.dtype, device=end.device).expand(n, -1, -1)
                    columns = self._node_columns(k + 1)
                    local_rows[-1][:, :, columns] -= self.continuity * eye
        residual = torch.cat(rows, dim=1)
        if not jacobian:
            return residual, None, None
        return residual, torch.cat(global_rows, dim=1), torch.cat(local_rows, dim=1)

    def _directions(self, window: int) -> tuple[tuple[Tensor, ...], dict[str, Tensor]]:
        """The y0 and parameter directions of window k's sweep: one per global unknown, then one
        per initial-state component fitted (k = 0: only the series where it is fitted) or per
        state component (a shooting node)."""
        like = self.times
        local = self.initial_columns if window == 0 else self.state_size
        count = self.global_columns + local
        eye = torch.eye(count, dtype=like.dtype, device=like.device)
        params, offset = {}, 0
        for name, p in self.unknowns:
            params[name] = eye[:, offset:offset + p.numel()].reshape(count, *p.shape)
            offset += p.numel()
        states, row, n = [], self.global_columns, len(self.rows)
        for name in self.names:
            tangent = like.new_zeros(count, n, self.sizes[name])
            chosen = self.components[name] if window == 0 else torch.arange(self.sizes[name], device=like.device)
            for j, component in enumerate(chosen.tolist()):
                tangent[row + j, :, component] = self.free[name][self.rows, j].to(like.dtype) if window == 0 else 1.0
            row += len(chosen)
            states.append(tangent.reshape(count, n, *self.shapes[name]))
        return tuple(states), params

    def _node_columns(self, window: int) -> slice:
        start = self.initial_columns + (window - 1) * self.state_size
        return slice(start, start + self.state_size)

    def _columns(self, tangent: Tensor, window: int, global_rows: list, local_rows: list) -> None:
        """Split a window's tangent rows (series, rows, P) into global and local columns."""
        G = self.global_columns
        global_rows.append(tangent[..., :G])
        width = self.initial_columns + (len(self.windows) - 1) * self.state_size
        local = tangent.new_zeros(*tangent.shape[:2], width)
        columns = slice(0, self.initial_columns) if window == 0 else self._node_columns(window)
        local[:, :, columns] = tangent[..., G:]
        local_rows.append(local)
