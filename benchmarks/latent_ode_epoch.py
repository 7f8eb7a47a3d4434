"""Latent ODE benchmark: where the time of a training epoch goes.

The fast setting of examples/mujoco_latent_ode.py: hopper (physode.datasets.hopper(1000), min-max
scaled, 800 training series cut to random windows of 100 points at dt 0.005 s, 14 features) and
LatentODE(14, 15, encoder_hidden=30, encoder_units=(100,), units=(100, 100), obs_std=1e-3,
init="normal"): an ODE-RNN encoder run backwards in time (Euler, steps of span / 50, gradient
"direct"), the latent ODE solved by dopri5 at rtol 1e-3, atol 1e-4 with gradient "aca", a linear
decoder. One epoch-equivalent is --batches batches of 50 series (interpolation, 10/20/30/50% of
the points observed, drawn once per batch with a fixed seed so that every run sees the same tasks),
each a forward negative_elbo (3 draws of z0) and its backward, without optimiser steps.

Each epoch is split into: the encoder's forward pass; the latent solve (LatentODE.decode without
its decoder); the decoder; the rest of the forward pass (posterior MLP, sampling, likelihood, KL);
the backward pass down to the encoder's output (decoder, latent solve by ACA, posterior MLP); and the
backward pass through the encoder. Function evaluations of the encoder's and of the latent ODE's
MLP are counted in the forward and in the backward pass. One warm-up epoch, then --repeats timed
epochs; the table gives the median and the best of each part. Each cell (--cells) gets a fresh
model with the same seed.

    python benchmarks/latent_ode_epoch.py --threads 1          # about a minute
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from mujoco_latent_ode import FRACTIONS, WINDOW, windows  # noqa: E402

from physode.datasets import MinMaxScale, hopper, split  # noqa: E402
from physode.nn import LatentODE  # noqa: E402
from physode.series import IrregularBatch, interpolation_task  # noqa: E402

PARTS = ("encoder", "latent solve", "decoder", "rest of forward", "backward to encoder", "backward of encoder")


class Clock:
    """Seconds per part of an epoch, and the function evaluations of each ODE, forward and backward."""

    def __init__(self, model: LatentODE):
        self.seconds: dict[str, float] = defaultdict(float)
        self.evaluations: dict[str, int] = defaultdict(int)
        self.phase = "forward"
        self._started: dict[str, float] = {}
        self.timed(model.encoder, "encoder", on_output=self._stamp_encoder_gradient)
        self.timed(model.decoder, "decoder")
        self.counted(model.encoder.dynamics.field, "encoder")
        self.counted(model.dynamics.field, "latent")
        decode = model.decode

        def timed_decode(*args, **kwargs):
            started = time.perf_counter()
            result = decode(*args, **kwargs)
            self.seconds["decode"] += time.perf_counter() - started
            return result

        model.decode = timed_decode
        self.encoder_gradient_at = None

    def timed(self, module: torch.nn.Module, part: str, on_output=None) -> None:
        def before(module, inputs):
            self._started[part] = time.perf_counter()

        def after(module, inputs, output):
            self.seconds[part] += time.perf_counter() - self._started[part]
            if on_output is not None:
                on_output(output)

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    def counted(self, module: torch.nn.Module, ode: str) -> None:
        def count(module, inputs, output):
            self.evaluations[f"{ode} {self.phase}"] += 1

        module.register_forward_hook(count)

    def _stamp_encoder_gradient(self, h: torch.Tensor) -> None:
        if h.requires_grad:
            h.register_hook(self._stamp)

    def _stamp(self, gradient: torch.Tensor) -> None:
        self.encoder_gradient_at = time.perf_counter()

    def step(self, model: LatentODE, task, generator: torch.Generator) -> None:
        """One batch: the loss, forward and backward, timed by part."""
        self.phase = "forward"
        started = time.perf_counter()
        loss = model.negative_elbo(task, samples=3, generator=generator)
        forward_done = time.perf_counter()
        self.phase = "backward"
        model.zero_grad(set_to_none=True)
        loss.backward()
        done = time.perf_counter()
        self.seconds["forward"] += forward_done - started
        self.seconds["backward to encoder"] += self.encoder_gradient_at - forward_done
        self.seconds["backward of encoder"] += done - self.encoder_gradient_at

    def parts(self) -> dict[str, float]:
        s = self.seconds
        return {"encoder": s["encoder"], "latent solve": s["decode"] - s["decoder"], "decoder": s["decoder"],
                "rest of forward": s["forward"] - s["encoder"] - s["decode"],
                "backward to encoder": s["backward to encoder"], "backward of encoder": s["backward of encoder"]}


def tasks(args) -> list:
    """The epoch's interpolation tasks on batches of the training windows, drawn with fixed seeds."""
    raw = hopper(1000)
    train, _ = split(MinMaxScale.fit(raw).apply(raw), 0.8)
    full = IrregularBatch.from_dataset(windows(train, WINDOW, args.seed), ["qpos", "qvel"])
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(full.series, generator=generator)
    drawn = []
    for b in range(args.batches):
        batch = full.select(order[(b * args.batch) % full.series:][:args.batch])
        fraction = FRACTIONS[int(torch.randint(len(FRACTIONS), (), generator=generator))]
        drawn.append(interpolation_task(batch, fraction, generator=generator))
    return drawn


def epoch(model: LatentODE, drawn: list, seed: int) -> Clock:
    clock = Clock(model)
    for b, task in enumerate(drawn):
        clock.step(model, task, torch.Generator().manual_seed(seed + b))
    return clock


def measure(cell: str, drawn: list, args) -> tuple[dict[str, list[float]], list[float], dict[str, int]]:
    """Seconds per part and in all of each timed epoch, and the evaluations of one epoch."""
    seconds: dict[str, list[float]] = defaultdict(list)
    totals = []
    for repeat in range(args.repeats + 1):
        torch.manual_seed(args.seed)
        model = LatentODE(14, 15, encoder_hidden=30, encoder_units=(100,), encoder_cell=cell, units=(100, 100),
                          obs_std=1e-3, init="normal")
        started = time.perf_counter()
        clock = epoch(model, drawn, args.seed)
        total = time.perf_counter() - started
        if repeat:  # the first is the warm-up
            totals.append(total)
            for part, value in clock.parts().items():
                seconds[part].append(value)
    return seconds, totals, dict(clock.evaluations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=16, help="batches per epoch")
    parser.add_argument("--batch", type=int, default=50, help="series per batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs after one warm-up")
    parser.add_argument("--cells", nargs="+", default=["gru", "gaussian"], choices=["gru", "gaussian"])
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    drawn = tasks(args)
    union = [len(t.observed.times) for t in drawn]
    print(f"{args.batches} batches of {args.batch} series; union grid {min(union)}-{max(union)} times per batch; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; median and best of {args.repeats} epochs")
    for cell in args.cells:
        seconds, totals, evaluations = measure(cell, drawn, args)
        print(f"\nencoder_cell={cell!r}")
        print(f"{'part':<22}{'median [s]':>11}{'best [s]':>10}{'share':>8}")
        whole = statistics.median(totals)
        for part in PARTS:
            median = statistics.median(seconds[part])
            print(f"{part:<22}{median:>11.3f}{min(seconds[part]):>10.3f}{median / whole:>8.0%}")
        print(f"{'epoch':<22}{whole:>11.3f}{min(totals):>10.3f}")
        print("evaluations per epoch: " + ", ".join(f"{ode} {phase} {evaluations.get(f'{ode} {phase}', 0)}"
                                                   for ode in ("encoder", "latent") for phase in ("forward", "backward")))


if __name__ == "__main__":
    main()
