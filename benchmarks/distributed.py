"""Data-parallel fitting: the seconds per epoch of a fit of a pendulum fleet (examples/distributed_fit.py)
on 1, 2, ... ranks of torch.distributed (gloo, on this machine, one torch thread per rank), and
the speed-up over one process.

Three fits of the same fleet: DampedPendulum (physics only: the length and friction) by the
default Levenberg-Marquardt on the whole data set (an epoch is one accepted step: the Jacobian of
every series by forward sensitivities, and the trial points) and by Adam on batches of 256 series,
and the hybrid Pendulum (the friction an MLP of two hidden layers of 32) by Adam on batches of 1,024. The ranks are spawned here with torch.multiprocessing, as a
launcher would start them; the rank counts alternate over the repeats and the median epoch of
each run is reported.

    python benchmarks/distributed.py                         # 4,096 series on 1 and 2 ranks
    python benchmarks/distributed.py --ranks 1 2 4 8 --series 16384
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import statistics
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing

from physode.systems import DampedPendulum, Pendulum

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "distributed_fit.py"
FITS = {
    "physics, levenberg_marquardt": (DampedPendulum, {"epochs": 4, "ftol": 1e-15, "xtol": 1e-15, "gtol": 1e-15}),
    "physics, adam (batch 256)": (DampedPendulum, {"optimizer": "adam", "batch_size": 256, "epochs": 3, "lr": 1e-2}),
    "hybrid, adam (batch 1024)": (Pendulum, {"optimizer": "adam", "batch_size": 1024, "epochs": 3, "lr": 1e-3}),
}


def example():
    spec = importlib.util.spec_from_file_location("distributed_fit", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rank(rank: int, size: int, port: int, series: int, output: str) -> None:
    """One rank: every fit on the fleet; rank 0 writes the seconds of each epoch to `output`."""
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    try:
        observed, _ = example().fleet(series, 0.01, 0)
        seconds = {}
        for name, (system, settings) in FITS.items():
            torch.manual_seed(0)
            result = system().fit(observed, progress=False, **settings)
            seconds[name] = result.history["seconds"].values.tolist()
        if rank == 0:
            Path(output).write_text(json.dumps(seconds))
    finally:
        torch.distributed.destroy_process_group()


def run(size: int, series: int) -> dict[str, float]:
    """The median seconds per epoch of each fit on `size` ranks."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        output = str(Path(folder) / "seconds.json")
        torch.multiprocessing.start_processes(rank, args=(size, port, series, output), nprocs=size, join=True,
                                              start_method="spawn")
        seconds = json.loads(Path(output).read_text())
    return {name: statistics.median(values) for name, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--series", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times: dict[int, list[dict[str, float]]] = {size: [] for size in args.ranks}
    for repeat in range(args.repeats):
        for size in args.ranks:
            times[size].append(run(size, args.series))
            print(f"repeat {repeat + 1}, {size} rank(s): " + ", ".join(f"{k} {v:.3f} s/epoch"
                                                                       for k, v in times[size][-1].items()), flush=True)
    base = {name: statistics.median(t[name] for t in times[args.ranks[0]]) for name in FITS}
    print(f"\n{args.series} pendulums, median seconds per epoch over {args.repeats} runs (speed-up over "
          f"{args.ranks[0]} rank(s))")
    print(f"{'ranks':>6}" + "".join(f"{name:>30}" for name in FITS))
    for size in args.ranks:
        cells = []
        for name in FITS:
            median = statistics.median(t[name] for t in times[size])
            cells.append(f"{median:>20.3f} s ({base[name] / median:.2f}x)")
        print(f"{size:>6}" + "".join(cells))


if __name__ == "__main__":
    main()
