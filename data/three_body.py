"""Reference trajectories of three bodies under Newtonian gravity (optionally with drag)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from physode.checks import check_count, check_real, check_real_array, check_time_array

from .reference import reference_dataset

# The figure-eight choreography of equal unit masses (Chenciner & Montgomery, Ann. Math. 152
# (2000) 881-901; initial values from Simo's computation), tilted out of the plane so that the
# motion is three-dimensional; with unequal masses it is no longer periodic.
FIGURE_EIGHT_POSITION = np.array([[0.97000436, -0.24308753, 0.1], [-0.97000436, 0.24308753, -0.1], [0.0, 0.0, 0.0]])
FIGURE_EIGHT_VELOCITY = np.array([[0.466203685, 0.43236573, 0.05], [0.466203685, 0.43236573, 0.05],
                                  [-0.93240737, -0.86473146, -0.1]])


def three_body(
    mass=(1.1, 1.1, 0.9), t=None, *, position=None, velocity=None, gravitational_constant: float = 1.0,
    drag: float = 0.0, noise: float = 0.0, series: int = 1, spread: float = 0.05, seed: int = 0,
) -> xr.Dataset:
    """Positions and velocities of three bodies, r_i'' = G sum_j m_j (r_j - r_i)/|r_j - r_i|^3 - drag r_i',
    solved by scipy's DOP853 at rtol = atol = 1e-12; a Dataset (series, time, body, axis).

    Defaults: t = 0..2 (201 points), the tilted figure-eight initial state; with `series` > 1 the
    further series start from it perturbed by `spread` (seeded). `noise` adds Gaussian noise.
    """
    t = np.linspace(0.0, 2.0, 201) if t is None else check_time_array("t", t, minimum=2, increasing=True)
    mass = check_real_array("mass", mass, (3,), finite=True)
    if not (mass > 0).all():
        raise ValueError(f"mass must be positive, got {mass.tolist()}")
    series, seed = check_count("series", series), check_count("seed", seed, minimum=0)
    gravitational_constant = check_real("gravitational_constant", gravitational_constant, positive=True)
    drag, spread = check_real("drag", drag, positive=False), check_real("spread", spread, positive=False)
    rng = np.random.default_rng(seed)
    base = {name: default if value is None else check_real_array(name, value, (3, 3), finite=True)
            for name, value, default in (("position", position, FIGURE_EIGHT_POSITION),
                                         ("velocity", velocity, FIGURE_EIGHT_VELOCITY))}
    initial = {name: np.stack([value] + [value + spread * rng.standard_normal(value.shape) for _ in range(series - 1)])
               for name, value in base.items()}

    def rhs(_, y):
        r, v = y[:9].reshape(3, 3), y[9:].reshape(3, 3)
        separation = r[None, :, :] - r[:, None, :]
        distance = np.linalg.norm(separation, axis=-1) + np.eye(3)
        weight = mass[None, :] * (1 - np.eye(3)) / distance**3
        acceleration = gravitational_constant * (weight[..., None] * separation).sum(axis=1) - drag * v
        return np.concatenate([v.reshape(-1), acceleration.reshape(-1)])

    dims = {"position": ("body", "axis"), "velocity": ("body", "axis")}
    ds = reference_dataset(rhs, initial, t, dims, noise=noise, seed=seed + 1,
                           units={"position": "length", "velocity": "length / time"})
    ds.attrs.update({"mass": mass.tolist(), "gravitational_constant": gravitational_constant, "drag": drag})
    return ds
