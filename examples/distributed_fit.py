"""A fleet of pendulums fitted data-parallel on torch.distributed.

The pendulums share an unknown length L and friction coefficient c (identical devices) but start
from different, unknown states; only their angles are observed, with noise. `fit` finds L, c and
every pendulum's initial state. Started by a launcher such as torchrun, the same script fits on
every rank: each rank integrates its share of the series, and the ranks sum what the fit needs
(J^T J and J^T r for the default Levenberg-Marquardt, the gradients for a first-order optimiser),
so every rank takes the steps one process would take. Rank 0 prints and writes the checkpoint;
an interrupted run resumes with --resume, on the same or another number of ranks.

    python examples/distributed_fit.py                                      # one process
    torchrun --nproc-per-node 2 examples/distributed_fit.py                 # two ranks here (gloo)
    torchrun --nproc-per-node 2 examples/distributed_fit.py --optimizer adam --batch-size 256 --epochs 20
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        examples/distributed_fit.py --device cuda --series 65536           # 8 GPUs on 2 machines (NCCL)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from physode.systems import DampedPendulum

TRUTH = {"length": 0.8, "friction": 0.3}
TIMES = np.linspace(0.0, 4.0, 41)


def fleet(series: int, noise: float, seed: int):
    """`series` pendulums of the true length and friction from random states, angles observed with noise."""
    rng = np.random.default_rng(seed)
    start = {"angle": rng.uniform(0.3, 1.5, series), "angular_velocity": rng.uniform(-1.0, 1.0, series)}
    data = DampedPendulum(**TRUTH).simulate(start, TIMES, rtol=1e-10, atol=1e-10)
    observed = data[["angle"]]
    observed["angle"] = observed["angle"] + noise * rng.standard_normal(observed["angle"].shape)
    return observed, data["angular_velocity"].isel(time=0).values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=4096, help="pendulums in the fleet")
    parser.add_argument("--noise", type=float, default=0.01, help="standard deviation of the angle noise (rad)")
    parser.add_argument("--optimizer", default="auto", help="'auto' (Levenberg-Marquardt here), 'adam', 'lbfgs', ...")
    parser.add_argument("--batch-size", type=int, help="series per update (first-order optimisers)")
    parser.add_argument("--epochs", type=int, help="at most this many epochs (default: fit's)")
    parser.add_argument("--checkpoint", help="checkpoint file, written by rank 0 after every epoch")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--device", default="cpu", help="'cpu', or 'cuda' for one GPU per rank (cuda:LOCAL_RANK)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if args.device == "cuda" else args.device)
    observed, true_velocity = fleet(args.series, args.noise, args.seed)
    system = DampedPendulum(device=device)
    started = time.perf_counter()
    result = system.fit(observed, optimizer=args.optimizer, batch_size=args.batch_size, epochs=args.epochs,
                        checkpoint=args.checkpoint, resume=args.resume, seed=args.seed)
    seconds = time.perf_counter() - started
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return
    ranks = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    fitted = {name: float(value) for name, value in result.parameters.items()}
    velocity = result.initial_state["angular_velocity"].values
    print(f"{args.series} pendulums, {len(TIMES)} noisy angles each, on {ranks} rank(s) ({device}): "
          f"{result.epochs} epochs in {seconds:.1f} s ({result.stop_reason})")
    for name, value in fitted.items():
        print(f"  {name:<9} {value:.5f}   true {TRUTH[name]:.5f}   error {value - TRUTH[name]:+.2e}")
    print(f"  initial angular velocities: RMS error {np.sqrt(np.mean((velocity - true_velocity) ** 2)):.2e} rad/s")


if __name__ == "__main__":
    main()
