"""Dataset generators, installed as physode.datasets: reference trajectories as xarray Datasets."""

from .lotka_volterra import lotka_volterra
from .pendulum import pendulum
from .reference import reference_dataset
from .three_body import three_body

__all__ = ["lotka_volterra", "pendulum", "reference_dataset", "three_body"]
