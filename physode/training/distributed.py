"""Data-parallel fits on torch.distributed: the process group as a fit sees it.

Every rank holds the whole model and the whole data set. Each takes its share of every batch
(positions rank, rank + size, ... of the batch, so that over the ranks every series of an epoch is
seen exactly once) and the ranks sum what the fit needs: the partial sums of the loss and the
gradients of a first-order fit, the normal equations J^T J and J^T r of Levenberg-Marquardt, the
validation loss. Equal sums give equal updates, so the ranks' parameters stay identical, and a
fit on N ranks takes the steps of a fit in one process up to the order of the summation.

physode starts no process and opens no socket: a launcher (torchrun, Slurm, Kubernetes) starts
the ranks and sets the environment that torch.distributed.init_process_group reads.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class RankFailed(RuntimeError):
    """An update failed on another rank: every rank drops it together."""


@dataclass(frozen=True)
class Group:
    """This process's place among the fit's ranks: `rank` of `size` (0 of 1 for a fit in one process)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes checkpoints and shows progress."""
        return self.rank == 0

    def positions(self, count: int, device: torch.device | None = None) -> Tensor:
        """This rank's positions in a batch of `count`: rank, rank + size, ..."""
        return torch.arange(self.rank, count, self.size, device=device)

    def sum(self, tensor: Tensor) -> Tensor:
        """The elementwise sum of `tensor` over the ranks (in place)."""
        if self.size > 1:
            torch.distributed.all_reduce(tensor)
        return tensor

    def total(self, value: float, like: Tensor) -> float:
        """The sum of a number over the ranks (float64, on the device of `like`)."""
        return float(self.sum(torch.tensor([value], dtype=torch.float64, device=like.device)))

    def count(self, flag: bool, device: torch.device | None = None) -> int:
        """On how many ranks `flag` is true."""
        return round(self.total(float(flag), torch.empty(0, device=device)))

    def any(self, flag: bool, device: torch.device | None = None) -> bool:
        """Whether `flag` is true on some rank."""
        return self.count(flag, device) > 0

    def agree(self, error: BaseException | None, device: torch.device | None = None) -> None:
        """Raise on every rank when the work just done failed on some rank: `error` where it failed,
        RankFailed naming the first rank that failed elsewhere (so that no rank waits forever in
        the next collective for one that has left). `error` may be a KeyboardInterrupt."""
        if self.size == 1:
            if error is not None:
                raise error
            return
        mark = torch.tensor([float(self.size - self.rank if error is not None else 0)], dtype=torch.float64,
                            device=device)
        torch.distributed.all_reduce(mark, op=torch.distributed.ReduceOp.MAX)
        if error is not None:
            raise error
        if mark.item() > 0:
            raise RankFailed(f"it failed on rank {self.size - int(mark.item())}")

    def check_same(self, digest: str, device: torch.device | None = None) -> None:
        """A ValueError on every rank unless all ranks pass the same fit digest (Fingerprint.digest):
        each rank must hold the whole data set and the same settings."""
        if self.size == 1:
            return
        value = int(digest[:12] or "0", 16)
        bounds = torch.tensor([value, -value], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(bounds, op=torch.distributed.ReduceOp.MAX)
        if int(bounds[0]) != -int(bounds[1]):
            raise ValueError("the ranks were given different fits (other data, model or settings): in a distributed "
                             "fit every rank passes the whole data set and the same arguments, and physode shares the "
                             "series out among the ranks")

    def broadcast(self, modules: Sequence[nn.Module]) -> None:
        """Give every rank rank 0's parameters and buffers."""
        if self.size > 1:
            for module in modules:
                for tensor in module.state_dict().values():
                    torch.distributed.broadcast(tensor, src=0)


def process_group(distributed: bool | None, device: torch.device) -> Group:
    """The ranks a fit runs on. `distributed`: None, the group of torch.distributed where one is
    initialised or where a launcher's environment (WORLD_SIZE > 1, MASTER_ADDR) says there is one,
    joined with the "gloo" backend for CPU tensors and, for a fit on CUDA, "nccl" for CUDA tensors
    (and left at the interpreter's exit); else this process alone. True: that group, or a
    ValueError where there is none. False: this process alone."""
    if distributed is False:
        return Group()
    if not isinstance(distributed, (bool, type(None))):
        raise TypeError(f"distributed must be None (automatic), True or False, got {distributed!r}")
    available = torch.distributed.is_available()
    if available and not torch.distributed.is_initialized() and _launched():
        torch.distributed.init_process_group("cpu:gloo,cuda:nccl" if torch.device(device).type == "cuda" else "gloo")
        atexit.register(_leave)
    if not (available and torch.distributed.is_initialized()):
        if distributed:
            raise ValueError("distributed=True, but torch.distributed has no process group and no launcher set "
                             "WORLD_SIZE and MASTER_ADDR: start the script with torchrun (torchrun --nproc-per-node N "
                             "script.py) or call torch.distributed.init_process_group first")
        return Group()
    size = torch.distributed.get_world_size()
    return Group(torch.distributed.get_rank(), size) if size > 1 else Group()


def _leave() -> None:
    """Leave the group physode joined, so that no rank aborts at exit with the group still open."""
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _launched() -> bool:
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ
    except ValueError:
        return False
