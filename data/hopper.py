"""The MuJoCo hopper set of Latent ODEs (Rubanova, Chen & Duvenaud, "Latent ODEs for irregularly-sampled
time series", NeurIPS 2019, section 4), regenerated locally with the `mujoco` package."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from physode.checks import check_count, check_flag
from physode.series.dataset import load, save
from physode.training import progress_bar

ASSET = Path(__file__).resolve().parent / "assets" / "hopper.xml"
TIMESTEP = 0.005  # seconds: <option timestep="0.005"/> of dm_control's hopper.xml


def data_directory(directory: str | os.PathLike | None = None) -> Path:
    """Where generated data sets are cached: `directory` if given, else $PHYSODE_DATA, else
    $XDG_DATA_HOME/physode, else ~/.local/share/physode."""
    if directory is not None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a path (str or os.PathLike) or None, got {type(directory).__name__}")
        return Path(directory).expanduser()
    if os.environ.get("PHYSODE_DATA"):
        return Path(os.environ["PHYSODE_DATA"]).expanduser()
    if os.environ.get("XDG_DATA_HOME"):
        return Path(os.environ["XDG_DATA_HOME"]).expanduser() / "physode"
    return Path.home() / ".local" / "share" / "physode"


def hopper_path(series: int = 10000, *, seed: int = 123, steps: int = 200, directory=None) -> Path:
    """The cache file of `hopper(series, seed=seed, steps=steps)`: <data directory>/hopper-n{series}-s{seed}-t{steps}.nc."""
    series, steps, seed = check_count("series", series), check_count("steps", steps), check_count("seed", seed, minimum=0)
    return _path(series, seed, steps, directory)


def _path(series: int, seed: int, steps: int, directory) -> Path:
    return data_directory(directory) / f"hopper-n{series}-s{seed}-t{steps}.nc"


def hopper(
    series: int = 10000, *, seed: int = 123, steps: int = 200, cache: bool = True, directory=None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Trajectories of dm_control's planar hopper without control, as in Latent ODEs' MuJoCo experiment
    (Rubanova et al. 2019; their mujoco_physics.py, HopperPhysics._generate_random_trajectories).

    Each series starts from rootx, rootz ~ U(0, 0.5), the five angles ~ U(-2, 2) rad and the seven
    velocities ~ U(-5, 5), drawn in that order from numpy's default_rng(seed); MuJoCo then takes
    `steps` steps of 0.005 s and the state is recorded before each step. Returns the raw
    (unnormalised) Dataset with `qpos` and `qvel` of dims (series, time, joint), time in seconds.

    With `cache`, the Dataset is kept as a netCDF4/HDF5 file under `directory` (see
    `data_directory`, file name from `hopper_path`) and read from there on later calls; a cache file
    that is unreadable or holds other data is regenerated, with a warning. Generating
    shows a progress bar (`progress`: None, the default, only when stderr is a terminal).
    """
    series, steps, seed = check_count("series", series), check_count("steps", steps), check_count("seed", seed, minimum=0)
    check_flag("cache", cache)
    if progress is not None:
        check_flag("progress", progress)
    path = _path(series, seed, steps, directory)
    if cache and path.exists():
        cached = _cached(path, series, steps)
        if cached is not None:
            return cached
    ds = _generate(series, seed, steps, progress)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        save(ds, path)
    return ds


def _cached(path: Path, series: int, steps: int) -> xr.Dataset | None:
    """The data set in the cache file `path`; None, with a warning, if the file is unreadable or holds other data."""
    try:
        ds = load(path)
    except ValueError as error:
        reason = str(error)
    else:
        shapes = {name: ds[name].shape for name in ds.data_vars}
        if shapes == {"qpos": (series, steps, 7), "qvel": (series, steps, 7)}:
            return ds
        reason = f"it holds {shapes}, not qpos and qvel of shape {(series, steps, 7)}"
    warnings.warn(f"hopper: the cache file {path} is unreadable ({reason}); regenerating it", RuntimeWarning,
                  stacklevel=3)
    return None


def _generate(series: int, seed: int, steps: int, progress: bool) -> xr.Dataset:
    mujoco = _import_mujoco()
    model = mujoco.MjModel.from_xml_path(str(ASSET))
    if model.opt.timestep != TIMESTEP or model.nq != 7 or model.nv != 7:
        raise RuntimeError(f"{ASSET} is not the hopper model expected (timestep {model.opt.timestep}, nq {model.nq}, "
                           f"nv {model.nv}; expected 0.005 s, 7, 7)")
    joints = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(model.njnt)]
    data = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    qpos = np.empty((series, steps, model.nq))
    qvel = np.empty((series, steps, model.nv))
    bar = progress_bar(series, progress, unit="series")
    bar.set_description("hopper: generating series")
    for i in range(series):
        mujoco.mj_resetData(model, data)
        data.qpos[:2] = rng.uniform(0.0, 0.5, size=2)  # rootx, rootz
        data.qpos[2:] = rng.uniform(-2.0, 2.0, size=model.nq - 2)  # rooty and the four joint angles
        data.qvel[:] = rng.uniform(-5.0, 5.0, size=model.nv)
        mujoco.mj_forward(model, data)
        for t in range(steps):
            qpos[i, t] = data.qpos
            qvel[i, t] = data.qvel
            mujoco.mj_step(model, data)
        bar.update(1)
    bar.close()
    units = {"units": "m for rootx and rootz, rad for the angles"}
    velocity_units = {"units": "m / s for rootx and rootz, rad / s for the angles"}
    return xr.Dataset(
        {"qpos": (("series", "time", "joint"), qpos, {"long_name": "joint positions (MuJoCo qpos)", **units}),
         "qvel": (("series", "time", "joint"), qvel, {"long_name": "joint velocities (MuJoCo qvel)", **velocity_units})},
        coords={"series": np.arange(series), "time": ("time", np.arange(steps) * TIMESTEP, {"units": "s"}),
                "joint": joints},
        attrs={"seed": seed, "timestep": TIMESTEP, "mujoco_version": mujoco.__version__,
               "source": "dm_control suite hopper.xml (physics unchanged), no control; initial states as in "
                         "Rubanova, Chen & Duvenaud, Latent ODEs for irregularly-sampled time series, NeurIPS 2019"},
    )


def _import_mujoco():
    try:
        import mujoco
    except ImportError as error:
        raise ImportError('the hopper data set needs the mujoco package: pip install "physode[hopper]"') from error
    return mujoco
