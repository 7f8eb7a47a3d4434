"""Dataset generators, installed as physode.datasets: reference trajectories as xarray Datasets."""

from .hopper import data_directory, hopper, hopper_path
from .lotka_volterra import lotka_volterra
from .pendulum import pendulum
from .periodic import periodic
from .reference import reference_dataset
from .scaling import MinMaxScale, split
from .three_body import three_body

__all__ = [
    "MinMaxScale", "data_directory", "hopper", "hopper_path", "lotka_volterra", "pendulum", "periodic",
    "reference_dataset", "split", "three_body",
]
