"""Declarative dynamical systems: the physics you know, networks for what you don't, and unknown
physical parameters, in one nn.Module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn

from ..checks import check_time_array
from ..odeint import odeint
from ..series import dataset
from .declarations import DECLARATIONS, Constant, Learned, Parameter, State, as_values, broadcast_value
from .fit import fit


class StateValues(dict):
    """The states passed to physics() and learned(): s.position or s["position"]."""

    def __getattr__(self, name: str) -> Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no state named {name!r}; the states are {list(self)}") from None


class _ClassBody(dict):
    """A class body's namespace that refuses to declare one name twice (the first would vanish)."""

    def __setitem__(self, name: str, value) -> None:
        if isinstance(value, DECLARATIONS) and isinstance(self.get(name), DECLARATIONS):
            raise TypeError(f"{name!r} is declared twice in the class body, as a {type(self[name]).__name__} and then "
                            f"as a {type(value).__name__}; a name declares one thing")
        super().__setitem__(name, value)


class _Declarative(type(nn.Module)):
    @classmethod
    def __prepare__(mcs, name, bases, **kwargs):
        return _ClassBody()


class System(nn.Module, metaclass=_Declarative):
    """A dynamical system declared in its class body.

    Declare `State`s, `Parameter`s (unknown, fitted), `Constant`s (known) and `Learned` terms as
    class attributes, set `observed` to the names of the states the data measures (default: all),
    and define the vector field as `physics(self, t, s)` and/or `learned(self, t, s)`: each takes
    the states `s` (tensors of shape (series, *state shape)) and returns a dict of their time
    derivatives; the two are summed, and a state neither mentions has derivative zero.
    Keyword arguments of the constructor set initial parameter values and constants; `dtype` and
    `device` place everything. The dtype defaults to float64 for a system without learned terms
    (physics only: scipy's precision, where tolerances of 1e-8 mean something) and to torch's
    default dtype (float32) for one with them; pass dtype=torch.float64 rather than calling
    .double() afterwards, which would keep initial values rounded to float32.
    """

    observed: Sequence[str] | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        found: dict[str, dict] = {"states": {}, "parameters": {}, "constants": {}, "learned": {}}
        kinds = {State: "states", Parameter: "parameters", Constant: "constants", Learned: "learned"}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                for entries in found.values():  # a subclass's declaration replaces an inherited one
                    entries.pop(name, None)
                for kind, key in kinds.items():
                    if isinstance(value, kind):
                        found[key][name] = value
        _check_names(cls, found)
        cls._declared = found
        if cls.observed is not None and (isinstance(cls.observed, str) or not isinstance(cls.observed, Sequence)):
            raise TypeError(f"{cls.__name__}.observed must be a tuple of State names, got {cls.observed!r}")
        observed = tuple(found["states"]) if cls.observed is None else tuple(cls.observed)
        if found["states"] and not observed:
            raise ValueError(f"{cls.__name__}.observed names no State; leave it out to observe every State")
        unknown = [name for name in observed if name not in found["states"]]
        if unknown:
            raise ValueError(f"{cls.__name__}.observed names {unknown}, which are not States ({list(found['states'])})")
        cls.observed_states = observed

    def __init__(self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None, **values):
        super().__init__()
        declared = type(self)._declared
        dtype = dtype or (torch.get_default_dtype() if declared["learned"] else torch.float64)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{type(self).__name__}: dtype must be torch.float32 or torch.float64, got {dtype!r}")
        device = _device(device)
        if not declared["states"]:
            raise TypeError(f"{type(self).__name__} declares no State")
        if type(self).physics is System.physics and type(self).learned is System.learned:
            raise TypeError(f"{type(self).__name__} defines neither physics(self, t, s) nor learned(self, t, s)")
        unknown = sorted(set(values) - set(declared["parameters"]) - set(declared["constants"]))
        if unknown:
            valid = sorted([*declared["parameters"], *declared["constants"]])
            raise TypeError(f"{type(self).__name__} has no parameter or constant {unknown}; valid: {valid}")
        for name, p in declared["parameters"].items():
            value = broadcast_value(as_values(values[name], name), p.shape, name) if name in values else p.value
            p._check(value, f"{name}")
            raw = p.to_unconstrained(value).to(dtype=dtype, device=device)
            self.register_parameter(p.raw_name, nn.Parameter(raw, requires_grad=not p.fixed))
        for name, c in declared["constants"].items():
            value = as_values(values[name], name) if name in values else c.value
            self.register_buffer(name, value.to(dtype=dtype, device=device).clone())
        for name, term in declared["learned"].items():
            self.add_module(name, term.build().to(dtype=dtype, device=device))

    # --- declarations -----------------------------------------------------------------------
    @classmethod
    def states(cls) -> dict[str, State]:
        return dict(cls._declared["states"])

    @classmethod
    def physical_parameters(cls) -> dict[str, Parameter]:
        return dict(cls._declared["parameters"])

    @property
    def state_names(self) -> list[str]:
        return list(type(self)._declared["states"])

    def parameter_values(self) -> dict[str, Tensor]:
        """The physical value of every declared Parameter (detached)."""
        return {name: getattr(self, name).detach() for name in type(self)._declared["parameters"]}

    # --- the vector field --------------------------------------------------------------------
    def physics(self, t: Tensor, s: StateValues) -> Mapping[str, Tensor]:
        """The known part of the vector field: {state name: time derivative}."""
        return {}

    def learned(self, t: Tensor, s: StateValues) -> Mapping[str, Tensor]:
        """The learned part of the vector field: {state name: time derivative}, added to physics()."""
        return {}

    def initial_guess(self, times: Tensor, observed: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Starting values of the states at times[0] where they are not observed, for fitting.

        `observed` maps the observed states to values (series, time, *shape), NaN where missing.
        Returns a tensor broadcastable to (series, *shape) per state; zeros by default. Override it
        with what the physics knows (e.g. velocities from finite differences of positions).
        """
        reference = times.new_zeros(())
        return {name: reference.expand(state.shape) for name, state in type(self).states().items()}

    def forward(self, t: Tensor, y: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The vector field on the tuple of states, in declaration order (what odeint integrates)."""
        names = self.state_names
        s = StateValues(zip(names, y))
        total: dict[str, Tensor] = {}
        for part in (self.physics, self.learned):
            for name, value in _derivatives(part, t, s, type(self).__name__).items():
                total[name] = value if name not in total else total[name] + value
        return tuple(_as_derivative(total.get(name), state, name, type(self).__name__) for name, state in zip(names, y))

    # --- integration --------------------------------------------------------------------------
    def integrate(self, initial: Mapping[str, Tensor], t: Tensor, **solver) -> dict[str, Tensor]:
        """Integrate from `initial` (tensors (series, *shape) per state) to the times t (1-D
        tensor); returns tensors (series, len(t), *shape) per state. `solver` keywords go to
        physode.odeint (method, rtol, atol, gradient, options)."""
        names = self.state_names
        missing = [n for n in names if n not in initial]
        if missing:
            raise ValueError(f"the initial state lacks {missing}; {type(self).__name__} has states {names}")
        ys = odeint(self, tuple(initial[n] for n in names), t, **solver)
        return {n: y.movedim(0, 1) for n, y in zip(names, ys)}

    def simulate(self, initial_state, t, *, series=None, **solver):
        """Simulate from an initial state at t[0]; returns an xarray.Dataset (series, time, *dims).

        `initial_state` maps every state name to an array of shape (*shape) or (series, *shape),
        or is an xarray.Dataset with a `series` dimension. Runs without gradients.
        """
        reference = next(iter(self.parameters()), None)
        dtype = reference.dtype if reference is not None else torch.get_default_dtype()
        device = reference.device if reference is not None else None
        initial, series = dataset.initial_state_tensors(self, initial_state, series, dtype, device)
        count = next(iter(initial.values())).shape[0]
        if series is not None and np.shape(series) != (count,):
            raise ValueError(f"series must give one label for each of the {count} series, got {np.shape(series)}")
        times = torch.as_tensor(check_time_array("t", t), dtype=dtype, device=device)
        with torch.no_grad():
            values = self.integrate(initial, times, **solver)
        return dataset.to_dataset(self, times, values, series=series)

    def extrapolate(self, observations, t, *, start: str = "first", initial_state=None, **solver):
        """Continue each observed series to the times t; returns a Dataset labelled like the input.

        Each series starts from its first time (`start="first"`) or from the last time at which
        all its observed states are observed (`start="last"`). Observed states come from the data
        there; unobserved ones from `initial_state` (a mapping or Dataset, e.g. the initial_state
        of a FitResult with start="first"), which is then required.
        """
        dataset.validate(observations, self)
        index = dataset.start_indices(self, observations, start)
        starts = dataset.time_coordinate(observations)[index]
        times = check_time_array("t", t)
        if times[0] < starts.max():
            raise ValueError(f"t must be 1-D and start at or after every series' start (the latest is {starts.max()})")
        initial = dataset.state_at(self, observations, index, initial_state)
        labels = observations["series"].values
        pieces = []
        for begin in np.unique(starts):
            chosen = np.flatnonzero(starts == begin)
            grid = times if times[0] == begin else np.concatenate([[begin], times])
            part = self.simulate({k: v[chosen] for k, v in initial.items()}, grid, series=labels[chosen], **solver)
            pieces.append(part.isel(time=slice(len(grid) - len(times), None)))
        result = xr.concat(pieces, dim="series") if len(pieces) > 1 else pieces[0]
        return result.sel(series=labels) if len(pieces) > 1 else result

    # --- fitting ----------------------------------------------------------------------------
    def fit(self, data, **kwargs):
        """Fit every free parameter to `data` (an xarray.Dataset); see physode.model.fit.fit."""
        return fit(self, data, **kwargs)


def initial_rate(times: Tensor, values: Tensor, fraction: float = 0.1) -> Tensor | None:
    """The rate of change at times[0] of observed values (series, time, ...): the slope of the
    least-squares line through each series' observations in the first `fraction` of the time
    points (at least two), a starting guess for a state that is the rate of an observed one (a
    velocity from positions, say). A line through several points averages the noise that a
    difference of two neighbours would divide by their small time step. None where a series has
    fewer than two observations there."""
    count = max(2, round(fraction * values.shape[1]))
    window = values[:, :count]
    mask = torch.isfinite(window)
    if bool((mask.sum(dim=1) < 2).any()):
        return None
    t = (times[:count] - times[0]).reshape(1, -1, *[1] * (values.ndim - 2)).expand_as(window)
    weight = mask.to(values.dtype)
    total = weight.sum(dim=1, keepdim=True)
    t_mean = (weight * t).sum(dim=1, keepdim=True) / total
    x_mean = (weight * window.nan_to_num()).sum(dim=1, keepdim=True) / total
    spread = (weight * (t - t_mean)).square().sum(dim=1)
    return (weight * (t - t_mean) * (window.nan_to_num() - x_mean)).sum(dim=1) / spread


def _device(device) -> torch.device | None:
    """`device` as a torch.device that exists here, or None; errors name `device`."""
    if device is None:
        return None
    try:
        placed = torch.device(device)
        torch.empty(0, device=placed)
    except (RuntimeError, TypeError, AssertionError) as error:
        raise ValueError(f"device {device!r} is not available here: {error}") from None
    return placed


RESERVED = frozenset(dir(System)) | {"training"}  # what nn.Module and System already mean by a name


def _check_names(cls, found: dict[str, dict]) -> None:
    """Refuse declared names that would hide an attribute of System (forward, fit, ...) or clash with
    the stored name of a Parameter (<name>_unconstrained)."""
    names = {name: kind for kind, entries in found.items() for name in entries}
    for name, kind in names.items():
        if name in RESERVED:
            raise TypeError(f"{cls.__name__}.{name}: {name!r} is an attribute of every System and cannot name one of "
                            f"its {kind}; rename it")
    for name, parameter in found["parameters"].items():
        if parameter.raw_name in names:
            raise TypeError(f"{cls.__name__}.{parameter.raw_name}: the name is taken by the unconstrained value of "
                            f"Parameter {name!r}; rename it")


def _derivatives(part, t: Tensor, s: StateValues, owner: str) -> Mapping[str, Tensor]:
    """What physics() or learned() returned, checked to be a mapping of state names."""
    derivatives = part(t, s)
    if not isinstance(derivatives, Mapping):
        raise TypeError(f"{owner}.{part.__name__} must return a dict {{state name: derivative}}, "
                        f"got {type(derivatives).__name__}")
    for name in derivatives:
        if name not in s:
            raise ValueError(f"{owner}.{part.__name__} returned a derivative for {name!r}, which is not a State "
                             f"({list(s)})")
    return derivatives


def _as_derivative(value: Tensor | None, state: Tensor, name: str, owner: str) -> Tensor:
    """The derivative of state `name`: zeros where no part gave one; else a tensor of the state's
    shape (series, *state shape), dtype and device, which is never broadcast or cast."""
    if value is None:
        return torch.zeros_like(state)
    if not isinstance(value, Tensor):
        raise TypeError(f"{owner}: the derivative of {name!r} must be a tensor of shape {tuple(state.shape)} "
                        f"(series, *state shape), got {type(value).__name__}")
    if value.shape != state.shape:
        raise ValueError(f"{owner}: the derivative of {name!r} has shape {tuple(value.shape)}, but the state has "
                         f"shape {tuple(state.shape)} (series, *state shape)")
    if value.dtype != state.dtype or value.device != state.device:
        raise TypeError(f"{owner}: the derivative of {name!r} is {value.dtype} on {value.device}, but the state is "
                        f"{state.dtype} on {state.device}")
    return value
