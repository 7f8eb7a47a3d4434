"""Reading HDF5 files that may come from elsewhere: the path must name a regular file (opened once, so
it cannot be swapped between the checks and the reading) that is HDF5 and self-contained. An
external link, external storage or a virtual dataset would make HDF5 read other files (any file the
reader may open, such as /etc/passwd) into the data; such a file is refused before anything in it is read."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import h5py
from h5py import h5l

_READ_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError)  # raised on bad contents by HDF5 and readers


@dataclass(frozen=True)
class FileKind:
    """What a file must be (`description`, e.g. "a physode checkpoint (...)") and how to recover from
    one that is not (`recovery`, may be empty), for the errors of its reader."""

    description: str
    recovery: str = ""

    def error(self, path: str, reason: str) -> ValueError:
        """ValueError '<path> is not <description>: <reason>; <recovery>'."""
        recovery = f"; {self.recovery}" if self.recovery else ""
        return ValueError(f"{path} is not {self.description}: {reason}{recovery}")


@contextmanager
def open_hdf5(path: str | os.PathLike, kind: FileKind) -> Iterator[h5py.File]:
    """`path` open read-only as an h5py.File, checked to be a regular, self-contained HDF5 file.

    A missing or unreadable path raises FileNotFoundError or PermissionError, a directory
    IsADirectoryError; a file that is not such a file, and any of _READ_ERRORS raised while the
    caller reads it, raise ValueError from `kind.error`.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        _check_regular(descriptor, path, kind)
    except BaseException:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb") as handle:
        try:
            file = h5py.File(handle, "r")
        except _READ_ERRORS as error:
            raise kind.error(path, f"HDF5 cannot open it ({error})") from error
        with file:
            try:
                _check_self_contained(file)
                yield file
            except _READ_ERRORS as error:
                raise kind.error(path, str(error)) from error


def _check_regular(descriptor: int, path: str, kind: FileKind) -> None:
    status = os.fstat(descriptor)
    if stat.S_ISDIR(status.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"{path} is a directory, not {kind.description}")
    if not stat.S_ISREG(status.st_mode):
        raise kind.error(path, "it is not a regular file")
    if status.st_size == 0:
        raise kind.error(path, "the file is empty")


def _check_self_contained(file: h5py.File) -> None:
    """ValueError for the first link of `file` (in every group, by name) that reaches data outside it."""
    links: list = []  # the callback only collects: HDF5 calls it from C, which would garble an exception
    file.id.links.visit(lambda name, info: links.append((name, info.type)), info=True)
    for name, link_type in links:
        outside = _outside(file, name, link_type)
        if outside:
            raise ValueError(f"{outside}; physode reads only self-contained HDF5 files "
                             "(no external links, external storage or virtual datasets)")


def _outside(file: h5py.File, name: bytes, link_type: int) -> str | None:
    """How the link `name` of `file` reaches data outside the file; None if it does not."""
    where = "/" + name.decode(errors="replace")
    if link_type == h5l.TYPE_SOFT:
        return None
    if link_type == h5l.TYPE_EXTERNAL:
        link = file.get(name, getlink=True)
        return f"{where} is an external link to {link.filename}:{link.path}"
    if link_type != h5l.TYPE_HARD:
        return f"{where} is a user-defined link"
    item = file[name]
    if isinstance(item, h5py.Dataset) and item.external:
        return f"the dataset {where} keeps its data in {', '.join(str(entry[0]) for entry in item.external)}"
    if isinstance(item, h5py.Dataset) and item.is_virtual:
        sources = sorted({source.file_name for source in item.virtual_sources()})
        return f"the dataset {where} is a virtual dataset mapping data from {', '.join(sources)}"
    return None
