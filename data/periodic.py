"""The synthetic periodic set of Latent ODEs (Rubanova, Chen & Duvenaud, "Latent ODEs for irregularly-sampled
time series", NeurIPS 2019, section 4.1)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from physode.checks import check_count, check_real


def periodic(series: int = 1000, points: int = 100, *, t_end: float = 5.0, noise: float = 0.01, seed: int = 0) -> xr.Dataset:
    """Noisy sine waves on one shared irregular time grid, x(t) = sin(2 pi f t) + offset + noise.

    As in Latent ODEs' code (generate_timeseries.py, Periodic_1d with the arguments of
    lib/parse_datasets.py's periodic branch): the grid is t = 0 and `points` - 1 times ~ U(0, t_end),
    sorted; each series has amplitude 1, frequency f ~ U(0.4, 0.8) and offset ~ N(1, 0.1^2), and
    its phase starts at 0 at t = 0. Their code adds `noise` * U(0, 1) to every point but the first;
    here the noise is zero-mean Gaussian with standard deviation `noise` on every point.
    Draws (grid, frequencies, offsets, noise) come from numpy's default_rng(seed).

    Returns a Dataset with `x` (series, time, feature) and the clean signal's `frequency` and
    `offset` (series,).
    """
    series = check_count("series", series)
    points = check_count("points", points)
    t_end = check_real("t_end", t_end, positive=True)
    noise = check_real("noise", noise, positive=False)
    seed = check_count("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    time = np.sort(np.concatenate([[0.0], rng.uniform(0.0, t_end, size=points - 1)]))
    frequency = rng.uniform(0.4, 0.8, size=series)
    offset = 1.0 + 0.1 * rng.standard_normal(series)
    clean = np.sin(2 * np.pi * frequency[:, None] * time[None, :]) + offset[:, None]
    values = clean + noise * rng.standard_normal((series, points))
    return xr.Dataset(
        {"x": (("series", "time", "feature"), values[:, :, None], {"long_name": "sin(2 pi f t) + offset + noise"}),
         "frequency": ("series", frequency, {"long_name": "frequency f of the clean signal"}),
         "offset": ("series", offset, {"long_name": "constant offset of the clean signal"})},
        coords={"series": np.arange(series), "time": time, "feature": ["x"]},
        attrs={"seed": seed, "noise": noise, "t_end": t_end, "amplitude": 1.0,
               "source": "Rubanova, Chen & Duvenaud, Latent ODEs for irregularly-sampled time series, NeurIPS 2019: "
                         "periodic toy data (Gaussian noise)"},
    )
