"""Reference trajectories of a pendulum with friction."""

from __future__ import annotations

import numpy as np
import xarray as xr

from physode.checks import check_real, check_real_array, check_time_array

from .reference import reference_dataset


def pendulum(
    length: float = 1.5, t=None, *, angle=(1.0,), angular_velocity=(0.0,), gravity: float = 9.81,
    linear_friction: float = 0.3, quadratic_friction: float = 0.1, noise: float = 0.0, seed: int = 0,
) -> xr.Dataset:
    """theta'' = -(g / L) sin(theta) - c theta' - d theta' |theta'|, one series per initial angle;
    solved by scipy's DOP853 at rtol = atol = 1e-12; a Dataset (series, time)."""
    t = np.linspace(0.0, 5.0, 101) if t is None else check_time_array("t", t, minimum=2, increasing=True)
    length, gravity = check_real("length", length, positive=True), check_real("gravity", gravity, positive=False)
    linear_friction = check_real("linear_friction", linear_friction, positive=False)
    quadratic_friction = check_real("quadratic_friction", quadratic_friction, positive=False)

    def rhs(_, y):
        theta, omega = y
        return [omega, -gravity / length * np.sin(theta) - linear_friction * omega - quadratic_friction * omega * abs(omega)]

    initial = {name: np.atleast_1d(check_real_array(name, value, finite=True))
               for name, value in (("angle", angle), ("angular_velocity", angular_velocity))}
    ds = reference_dataset(rhs, initial, t, {"angle": (), "angular_velocity": ()}, noise=noise, seed=seed,
                           units={"angle": "rad", "angular_velocity": "rad / s"})
    ds.attrs.update({"length": length, "linear_friction": linear_friction, "quadratic_friction": quadratic_friction})
    return ds
