"""The synthetic periodic set of Latent ODEs (Rubanova, Chen & Duvenaud, "Latent ODEs for irregularly-sampled
time series", NeurIPS 2019, section 4.1)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from physode.checks import check_count, check_real

NOISE_DISTRIBUTIONS = ("uniform", "normal")


def periodic(series: int = 1000, points: int = 100, *, t_end: float = 5.0, noise: float = 0.01,
             noise_distribution: str = "uniform", seed: int = 0) -> xr.Dataset:
    """Noisy sine waves on one shared irregular time grid, x(t) = sin(2 pi f t) + offset + noise.

    By default the generator of Latent ODEs' code (generate_timeseries.py, Periodic_1d, with the
    arguments of the periodic branch of lib/parse_datasets.py): the grid is t = 0 and `points` - 1
    times ~ U(0, t_end), sorted; each series has amplitude 1, frequency f ~ U(0.4, 0.8) and
    offset ~ N(1, 0.1^2), and its phase starts at 0 at t = 0.

    noise_distribution: "uniform" (the reference's) adds `noise` * U(0, 1) to every point but the
    first, independently per series and point, so the noise has mean `noise` / 2 and the point at
    t = 0 equals the offset exactly (the reference's README uses noise 0.01); "normal" adds
    zero-mean Gaussian noise of standard deviation `noise` to every point.

    Draws (grid, frequencies, offsets, then noise) come from numpy's default_rng(seed), so for one
    seed the clean signal is the same for every `noise` and `noise_distribution`.

    Returns a Dataset with `x` (series, time, feature) and the clean signal's `frequency` and
    `offset` (series,).
    """
    series = check_count("series", series)
    points = check_count("points", points)
    t_end = check_real("t_end", t_end, positive=True)
    noise = check_real("noise", noise, positive=False)
    if not isinstance(noise_distribution, str):
        raise TypeError(f"noise_distribution must be one of {NOISE_DISTRIBUTIONS}, got {type(noise_distribution).__name__}")
    if noise_distribution not in NOISE_DISTRIBUTIONS:
        raise ValueError(f"noise_distribution must be one of {NOISE_DISTRIBUTIONS}, got {noise_distribution!r}")
    seed = check_count("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    time = np.sort(np.concatenate([[0.0], rng.uniform(0.0, t_end, size=points - 1)]))
    frequency = rng.uniform(0.4, 0.8, size=series)
    offset = 1.0 + 0.1 * rng.standard_normal(series)
    values = np.sin(2 * np.pi * frequency[:, None] * time[None, :]) + offset[:, None]
    if noise_distribution == "uniform":
        values[:, 1:] += noise * rng.uniform(0.0, 1.0, size=(series, points - 1))
    else:
        values += noise * rng.standard_normal((series, points))
    return xr.Dataset(
        {"x": (("series", "time", "feature"), values[:, :, None], {"long_name": "sin(2 pi f t) + offset + noise"}),
         "frequency": ("series", frequency, {"long_name": "frequency f of the clean signal"}),
         "offset": ("series", offset, {"long_name": "constant offset of the clean signal"})},
        coords={"series": np.arange(series), "time": time, "feature": ["x"]},
        attrs={"seed": seed, "noise": noise, "noise_distribution": noise_distribution, "t_end": t_end, "amplitude": 1.0,
               "source": "Rubanova, Chen & Duvenaud, Latent ODEs for irregularly-sampled time series, NeurIPS 2019: "
                         "periodic toy data of their code (generate_timeseries.py, Periodic_1d; lib/parse_datasets.py, "
                         "periodic branch), noise: "
                         + ("noise * U(0, 1) on every point but the first" if noise_distribution == "uniform"
                            else "zero-mean Gaussian noise of standard deviation noise on every point")},
    )
