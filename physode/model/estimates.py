"""Per-series state estimates fitted alongside a System: initial states and shooting nodes."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

LEARN_INITIAL_STATE = ("unobserved", "all", "none")


class InitialState(nn.Module):
    """The state of every series at the first time.

    `learn="unobserved"` fixes each entry observed there to its observation and fits the others
    (starting from `guess`); `"all"` fits every entry, starting from the observations (useful when
    the first observation is noisy); `"none"` fits nothing, so every entry must be observed or
    guessed.
    """

    def __init__(self, first: Mapping[str, Tensor], guess: Mapping[str, Tensor], learn: str = "unobserved"):
        super().__init__()
        if learn not in LEARN_INITIAL_STATE:
            raise ValueError(f"learn_initial_state must be one of {LEARN_INITIAL_STATE}, got {learn!r}")
        self.names = list(guess)
        for name in self.names:
            observed = first.get(name)
            missing = torch.ones_like(guess[name], dtype=torch.bool) if observed is None else ~torch.isfinite(observed)
            start = guess[name] if observed is None else torch.where(missing, guess[name], observed.nan_to_num())
            if not bool(torch.isfinite(start).all()):
                raise ValueError(f"the initial value of {name!r} is neither observed at the first time nor given")
            free = {"unobserved": missing, "all": torch.ones_like(missing), "none": torch.zeros_like(missing)}[learn]
            self.register_buffer(f"{name}_given", start.clone())
            self.register_buffer(f"{name}_free", free)
            self.register_parameter(name, nn.Parameter(start.clone(), requires_grad=bool(free.any())))

    def forward(self, index: Tensor | slice = slice(None)) -> dict[str, Tensor]:
        return {name: torch.where(getattr(self, f"{name}_free"), getattr(self, name), getattr(self, f"{name}_given"))[index]
                for name in self.names}

    def free_entries(self) -> dict[str, Tensor]:
        """Which entries (series, *shape) are fitted, per state."""
        return {name: getattr(self, f"{name}_free") for name in self.names}


class ShootingNodes(nn.Module):
    """The full state of every series at the start of every shooting window after the first
    (multiple shooting): shape (series, windows - 1, *state shape) per state, all fitted."""

    def __init__(self, starts: Mapping[str, Tensor]):
        super().__init__()
        self.names = list(starts)
        for name, value in starts.items():
            self.register_parameter(name, nn.Parameter(value.clone()))

    def forward(self, index: Tensor | slice, window: int) -> dict[str, Tensor]:
        return {name: getattr(self, name)[index, window - 1] for name in self.names}

    def place(self, starts: Mapping[str, Tensor]) -> None:
        """Move the nodes to `starts` (the same shapes)."""
        with torch.no_grad():
            for name in self.names:
                getattr(self, name).copy_(starts[name])
