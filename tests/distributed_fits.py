"""The fits that tests/test_distributed.py runs on 2 gloo ranks and in one process: the same data,
models and settings on both sides."""

from __future__ import annotations

import functools
import json
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import torch

from physode.model.estimates import InitialState
from physode.solve import SolverError
from physode.nn import LatentODE
from physode.series import IrregularBatch
from physode.systems import DampedPendulum

TIMES = np.linspace(0.0, 4.0, 41)
# fixed steps: an adaptive solver picks its steps for the series it integrates together, so a
# rank's share would step differently from the whole set and agree only to the tolerance
FIXED = {"method": "rk4", "options": {"step_size": 0.05}}


@functools.cache
def pendulum_data(series: int):
    """A fleet of damped pendulums (L = 0.8 m, c = 0.3 / s) from different angles, the angle observed with noise."""
    truth = DampedPendulum(length=0.8, friction=0.3)
    rng = np.random.default_rng(series)
    start = {"angle": rng.uniform(0.3, 1.5, series), "angular_velocity": rng.uniform(-1.0, 1.0, series)}
    data = truth.simulate(start, TIMES)[["angle"]]
    data["angle"] = data["angle"] + 0.01 * rng.standard_normal(data["angle"].shape)
    return data


def least_squares() -> dict:
    """The default fit (Levenberg-Marquardt on the whole data set, float64) of 6 series, with fixed steps."""
    system = DampedPendulum()
    result = system.fit(pendulum_data(6), progress=False, **FIXED)
    return {"parameters": _flat(system), "initial": result.initial_state["angular_velocity"].values.tolist()}


def adam(series: int, epochs: int = 4, checkpoint: str | None = None, resume: bool = False, **settings) -> dict:
    """Adam on batches of 3 series (the last batch smaller), float64."""
    system = DampedPendulum()
    result = system.fit(pendulum_data(series), optimizer="adam", lr=0.05, batch_size=3, epochs=epochs, progress=False,
                        checkpoint=checkpoint, resume=resume, **FIXED, **settings)
    return {"parameters": _flat(system), "loss": result.history["loss"].values.tolist()}


def latent_ode() -> dict:
    """Two epochs of a small Latent ODE (float64, fixed steps, every point observed) on batches of 4 of 6 series."""
    torch.manual_seed(0)
    times = torch.linspace(0.0, 2.0, 12, dtype=torch.float64)
    phases = torch.linspace(0.0, 3.0, 6, dtype=torch.float64)
    values = torch.sin(2.0 * times[None, :] + phases[:, None])[..., None]
    batch = IrregularBatch(times, values, torch.ones_like(values))
    model = LatentODE(1, 2, encoder_hidden=4, encoder_units=(8,), units=(8,), method="rk4",
                      options={"step_size": 0.1}, dtype=torch.float64)
    result = model.fit(batch, epochs=2, batch_size=4, fraction=1.0, lr=1e-2, progress=False, objective="logsumexp",
                       validation=batch)
    return {"parameters": torch.cat([p.detach().reshape(-1) for p in model.parameters()]).tolist(),
            "val_loss": result.history["val_loss"].values.tolist(), "loss": result.history["loss"].values.tolist()}


def failing_once(rank: int) -> dict:
    """Adam on 8 series whose first solve fails on `rank` alone: every rank skips that update."""
    pendulum_data(8)  # simulated before the failing solve is put in place
    integrate, calls = DampedPendulum.integrate, []

    def fails_first(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1 and torch.distributed.get_rank() == rank:
            raise SolverError("step size underflow", 0.5, 3)
        return integrate(self, *args, **kwargs)

    DampedPendulum.integrate = fails_first
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = adam(8)
    finally:
        DampedPendulum.integrate = integrate
    skipped = [str(w.message) for w in caught if "update skipped" in str(w.message)]
    return {**result, "skipped": skipped}


def mismatched(rank: int, folder: str) -> list[str]:
    """The errors of fits to which each rank passes other data, or a checkpoint on rank 0 alone."""
    errors = []
    for settings in ({"series": 8 + rank}, {"series": 8, "checkpoint": os.path.join(folder, "r.h5") if rank == 0 else None}):
        try:
            adam(**settings)
            errors.append("")
        except ValueError as error:
            errors.append(str(error))
    return errors


def _flat(system) -> dict:
    return {name: value.reshape(-1).tolist() for name, value in system.parameter_values().items()}


def rank(rank: int, size: int, folder: str) -> None:
    """Rank `rank` of `size`, meeting the others through a file in `folder` and talking to them on
    the loopback interface: every fit, with the series each rank's initial states were read for in
    the 8-series Adam fit; the results in folder/rank<rank>.json."""
    torch.set_num_threads(1)
    if "lo" in (name for _, name in socket.if_nameindex()):
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=size)
    try:
        seen = []
        forward = InitialState.forward

        def recording(self, index=slice(None)):
            if isinstance(index, torch.Tensor):
                seen.append(index.tolist())
            return forward(self, index)

        results = {"least_squares": least_squares(), "adam7": adam(7), "latent_ode": latent_ode()}
        InitialState.forward = recording
        try:
            results["adam8"] = adam(8)
        finally:
            InitialState.forward = forward
        results["seen"] = seen
        results["checkpointed"] = adam(8, epochs=2, checkpoint=os.path.join(folder, "fit.h5"))
        results["failing"] = failing_once(1)
        results["mismatched"] = mismatched(rank, folder)
        results["shooting"] = adam(7, shooting=8)
        Path(folder, f"rank{rank}.json").write_text(json.dumps(results))
    finally:
        torch.distributed.destroy_process_group()
