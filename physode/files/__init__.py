"""Files written and read safely: atomic writes that never go through a planted link, and HDF5 files
checked to be self-contained before anything in them is read. Imports nothing else of physode."""

from .atomic import check_target, write_atomic
from .hdf5 import FileKind, open_hdf5

__all__ = ["FileKind", "check_target", "open_hdf5", "write_atomic"]
