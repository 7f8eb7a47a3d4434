"""A force the physics omits: three bodies moving through a medium that drags them.

The data contain gravity and a drag -gamma v that the ThreeBody physics does not know. Pure
physics (ThreeBody: only the masses are free) and the hybrid (ThreeBodyHybrid: the same gravity
plus a learned acceleration) are fitted with their defaults (Levenberg-Marquardt for the physics,
L-BFGS for the hybrid) to positions on t in [0, 1] and extrapolated to t = 2; the hybrid's
learned term absorbs the drag, so it extrapolates better.

    python examples/three_body_hybrid.py              # a few minutes on two cores
    python examples/three_body_hybrid.py --drag 0.5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from physode.datasets import three_body
from physode.systems import ThreeBody, ThreeBodyHybrid

TRUE_MASS = (1.1, 1.1, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drag", type=float, default=0.3, help="drag coefficient gamma in the data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    times = np.linspace(0.0, 2.0, 101)
    data = three_body(mass=TRUE_MASS, t=times, drag=args.drag)
    observed = data.sel(time=slice(0.0, 1.0)).drop_vars("velocity")
    future = times > 1.0
    print(f"three bodies with drag {args.drag}: positions on [0, 1], extrapolated to t = 2")
    print(f"{'model':28s} {'fitted masses':>28s} {'MSE on [0, 1]':>14s} {'MSE on (1, 2]':>14s} {'time [s]':>9s}")
    for cls in (ThreeBody, ThreeBodyHybrid):
        torch.manual_seed(args.seed)
        model = cls(dtype=torch.float64)
        start = time.perf_counter()
        result = model.fit(observed)
        seconds = time.perf_counter() - start
        path = model.extrapolate(observed, times, initial_state=result.initial_state, rtol=1e-9, atol=1e-9)
        error = (path["position"].values - data["position"].values) ** 2
        mass = np.array2string(model.mass.detach().numpy(), precision=4)
        name = f"{cls.__name__} ({'physics + learned' if cls is ThreeBodyHybrid else 'physics only'})"
        print(f"{name:28s} {mass:>28s} {error[:, ~future].mean():14.3e} {error[:, future].mean():14.3e} {seconds:9.1f}")


if __name__ == "__main__":
    main()
