"""Atomic writes: the bytes go to a fresh file created exclusively, under a random name, in the
target's directory (so never through an existing file or a planted link), are synced, and only then
renamed onto the target. On any failure the fresh file is removed and the target keeps its old
contents; the failure is an OSError naming the target, from plain os-level calls."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def check_target(name: str, path) -> str:
    """`path`, the argument `name`, as a str once a file can be written there: TypeError unless it is a
    str or os.PathLike, FileNotFoundError if its directory does not exist, IsADirectoryError if it is a
    directory, PermissionError if its directory is not writable."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"{name} {path!r}: the directory {directory!r} does not exist; "
                                              "create it or choose another path")
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"{name} {path!r} is a directory; give the path of a file")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"{name} {path!r}: the directory {directory!r} is not writable; "
                                            "choose another path")
    return path


def write_atomic(path: str | os.PathLike, data) -> None:
    """Replace the file at `path` by the bytes `data` (any bytes-like object), atomically."""
    path = os.fsdecode(os.fspath(path))
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    try:
        descriptor = os.open(temporary, _CREATE, 0o666)
    except OSError as error:
        raise _failed(path, error) from error
    try:
        try:
            _write_all(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _failed(path, error) from error
        raise


def _write_all(descriptor: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(descriptor, view):]


def _failed(path: str, error: OSError) -> OSError:
    """An OSError of the same kind (errno) as `error` that names the target."""
    return OSError(error.errno, f"could not write {path!r}: {error.strerror or error}; "
                                "the file there, if any, is unchanged")
