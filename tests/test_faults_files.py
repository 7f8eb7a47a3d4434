"""Bad files and file faults: full disks, planted links, hostile HDF5 files, damaged or foreign files,
bad checkpoint paths. Each raises a clear error naming the path (or argument) and never harms other files."""

import errno
import importlib
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

import physode
from physode.training import Loop, store, train

atomic = importlib.import_module("physode.files.atomic")
SECRET = b"password=hunter2\n"


def _save_checkpoint(path, values):
    store.save(path, {"x": torch.tensor(values, dtype=torch.float64)})


def _read_checkpoint(path):
    return store.load(path)["x"].tolist()


def _save_netcdf(path, values):
    physode.data.save(xr.Dataset({"x": ("n", np.array(values, dtype=float))}), path)


def _read_netcdf(path):
    return physode.data.load(path)["x"].values.tolist()


WRITERS = {"checkpoint": (_save_checkpoint, _read_checkpoint), "netcdf": (_save_netcdf, _read_netcdf)}
READERS = {"checkpoint": (store.load, "is not a readable physode checkpoint"),
           "netcdf": (physode.data.load, "is not a readable netCDF4/HDF5 data set")}
OLD, NEW = [1.5, 2.5, 3.5], [float(i) for i in range(5000)]


def _names(directory):
    return sorted(p.name for p in directory.iterdir())


# --- writes that fail: the error names the path, the last good file stays and still loads ---

def _partial_then_full(real):
    """os.write that writes 100 bytes once, then fails as a full disk does."""
    calls = []

    def write(descriptor, data):
        if calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        calls.append(descriptor)
        return real(descriptor, bytes(data[:100]))
    return write


def _failing(code):
    def fail(*args):
        raise OSError(code, os.strerror(code))
    return fail


FAULTS = {"write": (lambda real: _partial_then_full(real), errno.ENOSPC),
          "fsync": (lambda real: _failing(errno.EIO), errno.EIO),
          "replace": (lambda real: _failing(errno.EACCES), errno.EACCES)}


@pytest.mark.parametrize("call", FAULTS)
@pytest.mark.parametrize("kind", WRITERS)
def test_a_failed_write_names_the_path_and_keeps_the_last_good_file(tmp_path, monkeypatch, kind, call):
    save, read = WRITERS[kind]
    path = tmp_path / "state.h5"
    save(path, OLD)
    fake, code = FAULTS[call]
    monkeypatch.setattr(atomic.os, call, fake(getattr(os, call)))
    with pytest.raises(OSError, match=f"could not write {re.escape(repr(str(path)))}.*unchanged") as caught:
        save(path, NEW)
    monkeypatch.undo()
    assert caught.value.errno == code
    assert read(path) == OLD
    assert _names(tmp_path) == ["state.h5"]  # no temporary file left behind


CHILD = """
import importlib.util, resource, signal, sys
spec = importlib.util.spec_from_file_location("atomic", sys.argv[1])
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    atomic.write_atomic(sys.argv[2], b"n" * 100000)
except OSError as error:
    print(error.errno, error)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_really_full_file_system_is_an_oserror(tmp_path):
    """A file-size limit makes os.write fail for real (EFBIG) in a child process that only loads atomic.py."""
    path = tmp_path / "state.h5"
    path.write_bytes(b"old contents")
    child = subprocess.run([sys.executable, "-c", CHILD, atomic.__file__, str(path)], capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith(f"{errno.EFBIG} ") and repr(str(path)) in child.stdout
    assert path.read_bytes() == b"old contents" and _names(tmp_path) == ["state.h5"]


# --- planted links: a save never writes through them ---

@pytest.mark.parametrize("kind", WRITERS)
def test_a_link_planted_at_the_temporary_name_is_refused(tmp_path, monkeypatch, kind):
    save, read = WRITERS[kind]
    path, victim = tmp_path / "state.h5", tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    save(path, OLD)
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda nbytes: "0" * 16)
    os.symlink(victim, tmp_path / f".state.h5.{'0' * 16}.tmp")
    with pytest.raises(FileExistsError, match=re.escape(repr(str(path)))):
        save(path, NEW)
    assert victim.read_bytes() == b"precious" and read(path) == OLD


@pytest.mark.parametrize("planted", ["state.h5.partial", "state.h5"])
@pytest.mark.parametrize("kind", WRITERS)
def test_a_save_replaces_links_instead_of_writing_through_them(tmp_path, kind, planted):
    save, read = WRITERS[kind]
    path, victim = tmp_path / "state.h5", tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    os.symlink(victim, tmp_path / planted)
    save(path, NEW)
    assert victim.read_bytes() == b"precious"
    assert not path.is_symlink() and read(path) == NEW


# --- hostile HDF5 files: nothing outside the file is ever read ---

@pytest.fixture
def secrets(tmp_path):
    text = tmp_path / "secret.txt"
    text.write_bytes(SECRET)
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f["secret"] = np.frombuffer(SECRET, dtype="u1")
    return text, tmp_path / "secret.h5"


def _plant(f, name, how, text, h5):
    size = len(SECRET)
    if how == "external link":
        f[name] = h5py.ExternalLink(str(h5), "/secret")
        return
    if how == "external storage":
        f.create_dataset(name, shape=(size,), dtype="u1", external=[(str(text), 0, size)])
    else:
        layout = h5py.VirtualLayout(shape=(size,), dtype="u1")
        layout[:] = h5py.VirtualSource(str(h5), "secret", shape=(size,))
        f.create_virtual_dataset(name, layout)
    f[name].attrs["tensor"] = True


HOSTILE = {"external link": "is an external link to .*secret.h5:/secret",
           "external storage": "keeps its data in .*secret.txt",
           "virtual dataset": "is a virtual dataset mapping data from .*secret.h5"}


@pytest.mark.parametrize("how", HOSTILE)
@pytest.mark.parametrize("kind", READERS)
def test_hostile_files_are_refused_before_anything_is_read(tmp_path, secrets, kind, how):
    path = tmp_path / "hostile.h5"
    WRITERS[kind][0](path, OLD)
    name = "array0" if kind == "checkpoint" else "leak"
    with h5py.File(path, "a") as f:
        if name in f:
            del f[name]
        _plant(f, name, how, *secrets)
    with h5py.File(path, "r") as f:
        assert f[name][()].tobytes() == SECRET  # the file really does reach the secret
    load, expected = READERS[kind]
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} {expected}.*/{name} {HOSTILE[how]}.*self-contained"):
        load(path)


# --- damaged, empty and foreign files ---

def _truncated(path, kind):
    WRITERS[kind][0](path, NEW)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _other_kind(path, kind):
    WRITERS["netcdf" if kind == "checkpoint" else "checkpoint"][0](path, OLD)


BROKEN = {
    "empty": (lambda path, kind: path.write_bytes(b""), "the file is empty"),
    "truncated": (_truncated, "HDF5 cannot open it .*truncated file"),
    "random bytes": (lambda path, kind: path.write_bytes(np.random.default_rng(0).bytes(4096)),
                     "HDF5 cannot open it .*signature not found"),
    "text": (lambda path, kind: path.write_text("time,x\n0,1\n"), "HDF5 cannot open it .*signature not found"),
    "other kind": (_other_kind, "(its root attributes are \\['_NCProperties'\\]|it is HDF5 but not netCDF4)"),
}


@pytest.mark.parametrize("broken", BROKEN)
@pytest.mark.parametrize("kind", READERS)
def test_damaged_or_foreign_files_say_what_was_expected(tmp_path, kind, broken):
    path = tmp_path / "file.h5"
    make, reason = BROKEN[broken]
    make(path, kind)
    load, expected = READERS[kind]
    recovery = "; delete it or pass resume=False to start over$" if kind == "checkpoint" else "$"
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))} {expected} .*: {reason}.*{recovery}"):
        load(path)


@pytest.mark.parametrize("kind", READERS)
def test_missing_file_directory_and_wrong_type(tmp_path, kind):
    load, expected = READERS[kind]
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing.h5"))):
        load(tmp_path / "missing.h5")
    with pytest.raises(IsADirectoryError, match=f"{re.escape(str(tmp_path))} is a directory, not a readable"):
        load(tmp_path)
    with pytest.raises(TypeError, match="path must be a file path \\(str or os.PathLike\\), got int"):
        load(3)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("kind", READERS)
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path, kind):
    load, expected = READERS[kind]
    os.mkfifo(tmp_path / "pipe.h5")
    with pytest.raises(ValueError, match=f"{re.escape(str(tmp_path / 'pipe.h5'))} {expected}.*not a regular file"):
        load(tmp_path / "pipe.h5")


# --- checkpoints: the skeleton and the layout ---

def _nested(depth):
    return '{"list": [' * depth + "1" + "]}" * depth


def _replace(f, name, attrs=(("tensor", True),), **create):
    del f[name]
    f.create_dataset(name, **create).attrs.update(attrs)


def _skeleton(text):
    return lambda f: _replace(f, "skeleton", attrs=(), data=np.frombuffer(text.encode(), dtype="u1"))


def _set_attribute(name, value, owner="/"):
    return lambda f: f[owner].attrs.__setitem__(name, value)


NOT_STORED = "is not a contiguous dataset of numpy kind b/i/u/f/c with all its data stored"
LAYOUT = {
    "skeleton too deep": (_skeleton(_nested(150)), "nested deeper than 100 levels"),
    "skeleton deeper than json parses": (_skeleton("[" * 100000 + "]" * 100000), "nested deeper than 100 levels"),
    "skeleton not json": (_skeleton("{not json"), "skeleton is not UTF-8 JSON"),
    "skeleton not utf-8": (lambda f: _replace(f, "skeleton", attrs=(), data=np.array([0xff, 0xfe, 0x7b], "u1")),
                           "skeleton is not UTF-8 JSON"),
    "skeleton of floats": (lambda f: _replace(f, "skeleton", attrs=(), data=np.zeros(3)),
                           "'skeleton' is not a contiguous dataset of numpy kind u"),
    "no skeleton": (lambda f: f.__delitem__("skeleton"), "it has no 'skeleton' dataset"),
    "unknown node": (_skeleton('{"set": [1]}'), "keys \\['set'\\]"),
    "missing array": (_skeleton('{"array": "array7"}'), "keys \\['array'\\]"),
    "array name not text": (_skeleton('{"array": 0}'), "keys \\['array'\\]"),
    "unhashable key": (_skeleton('{"dict": [[{"list": []}, 1]]}'), "dict of hashable keys"),
    "bad dict pair": (_skeleton('{"dict": [[1]]}'), "keys \\['dict'\\]"),
    "bare list": (_skeleton("[1, 2]"), "depth 0, a list"),
    "two kinds in a node": (_skeleton('{"list": [], "tuple": []}'), "keys \\['list', 'tuple'\\]"),
    "other format": (_set_attribute("format", np.bytes_(b"other-1")), "its format is 'other-1'"),
    "format of an earlier physode": (_set_attribute("format", "physode-checkpoint-1"),
                                     "'format' attribute is a variable-length string: a checkpoint of an earlier"),
    "format not text": (_set_attribute("format", 2), "attribute 'format' of / is not a scalar of numpy kind 'S'"),
    "extra root attribute": (_set_attribute("extra", 1), "root attributes are \\['extra', 'format'\\]"),
    "foreign dataset": (lambda f: f.__setitem__("notes", np.zeros(2)), "it holds 'notes'"),
    "group": (lambda f: f.create_group("array1"), "'array1' is not a dataset with the attributes \\['tensor'\\]"),
    "soft link": (lambda f: f.__setitem__("array1", h5py.SoftLink("/array0")), "'array1' is not a dataset .*a link"),
    "no tensor attribute": (lambda f: f["array0"].attrs.__delitem__("tensor"), "'array0' is not a dataset with"),
    "tensor attribute not a flag": (_set_attribute("tensor", "yes", "array0"),
                                    "attribute 'tensor' of /array0 is not a scalar of numpy kind 'b'"),
    "strings": (lambda f: _replace(f, "array0", data=np.array([b"a", b"b"])), f"'array0' {NOT_STORED}"),
    "compressed": (lambda f: _replace(f, "array0", data=np.zeros(100), compression="gzip"), f"'array0' {NOT_STORED}"),
    "declared but not stored": (lambda f: _replace(f, "array0", shape=(10**12,), dtype="f8"),
                                f"'array0' {NOT_STORED} .*0 of 8000000000000 bytes"),
}


@pytest.mark.parametrize("change", LAYOUT)
def test_checkpoints_other_than_the_layout_written_are_refused(tmp_path, change):
    path = tmp_path / "fit.h5"
    _save_checkpoint(path, OLD)
    tamper, reason = LAYOUT[change]
    with h5py.File(path, "a") as f:
        tamper(f)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))} is not a readable physode checkpoint .*{reason}.*"
                                         "delete it or pass resume=False to start over$"):
        store.load(path)


def test_the_skeleton_may_be_a_hundred_levels_deep_and_no_more(tmp_path):
    tree = 0.5
    for _ in range(100):
        tree = [tree]
    store.save(tmp_path / "fit.h5", tree)
    back = store.load(tmp_path / "fit.h5")
    for _ in range(100):
        back = back[0]
    assert back == 0.5
    store.save(tmp_path / "fit.h5", [tree])
    with pytest.raises(ValueError, match="fit.h5 is not a readable physode checkpoint .*nested deeper than 100 levels"):
        store.load(tmp_path / "fit.h5")


# --- checkpoint paths, checked before the first epoch ---

class _NeverCalled:
    def __call__(self, *args):
        pytest.fail("the fit started although its checkpoint path is unusable")


def _loop():
    return Loop(modules=[], update=_NeverCalled(), series=1, epochs=1, progress=False)


def test_checkpoint_paths_that_cannot_be_written(tmp_path):
    with pytest.raises(TypeError, match="checkpoint must be a file path \\(str or os.PathLike\\), got int"):
        train(_loop(), checkpoint=3)
    missing = tmp_path / "no such directory" / "fit.h5"
    with pytest.raises(FileNotFoundError, match=f"checkpoint {re.escape(repr(str(missing)))}: the directory .* "
                                                "does not exist"):
        train(_loop(), checkpoint=missing)
    with pytest.raises(IsADirectoryError, match=f"checkpoint {re.escape(repr(str(tmp_path)))} is a directory"):
        train(_loop(), checkpoint=tmp_path)


def test_checkpoint_in_a_read_only_directory(tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: str(path) != str(tmp_path) and real(path, mode))
    directory = re.escape(repr(str(tmp_path)))
    with pytest.raises(PermissionError, match=f"checkpoint .*fit.h5': the directory {directory} is not writable"):
        train(_loop(), checkpoint=tmp_path / "fit.h5")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="permissions do not bind root")
def test_checkpoint_in_a_really_read_only_directory(tmp_path):
    directory = tmp_path / "read-only"
    directory.mkdir(mode=0o555)
    with pytest.raises(PermissionError, match="is not writable"):
        train(_loop(), checkpoint=directory / "fit.h5")


@pytest.mark.parametrize("broken", ["empty", "truncated", "text"])
def test_resuming_from_a_broken_checkpoint_says_how_to_recover(tmp_path, broken):
    path = tmp_path / "fit.h5"
    BROKEN[broken][0](path, "checkpoint")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} is not a readable physode checkpoint .*"
                                         "pass resume=False to start over"):
        train(_loop(), checkpoint=path, resume=True)


@pytest.mark.parametrize("ds, path, error, message", [
    ("not a dataset", "x.nc", TypeError, "ds must be an xarray.Dataset, got str"),
    (None, 3, TypeError, "path must be a file path \\(str or os.PathLike\\), got int"),
    (None, "missing/x.nc", FileNotFoundError, "path '.*missing/x.nc': the directory .* does not exist"),
    (None, ".", IsADirectoryError, "path '.*' is a directory"),
])
def test_data_save_bad_arguments(tmp_path, monkeypatch, ds, path, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        physode.data.save(xr.Dataset({"x": ("n", np.zeros(2))}) if ds is None else ds, path)
    assert _names(tmp_path) == []


# --- the hopper cache: an unreadable file is regenerated, with a warning ---

@pytest.mark.parametrize("broken", ["empty", "truncated", "text", "other data"])
def test_an_unreadable_hopper_cache_is_regenerated(tmp_path, broken):
    pytest.importorskip("mujoco")
    from physode.datasets import hopper, hopper_path
    fresh = hopper(2, steps=3, cache=False, progress=False)
    path = hopper_path(2, steps=3, directory=tmp_path)
    if broken == "other data":
        _save_netcdf(path, OLD)
    else:
        BROKEN[broken][0](path, "netcdf")
    with pytest.warns(RuntimeWarning, match=f"the cache file {re.escape(str(path))} is unreadable .*; regenerating it"):
        ds = hopper(2, steps=3, directory=tmp_path, progress=False)
    xr.testing.assert_identical(ds, fresh)
    xr.testing.assert_identical(physode.data.load(path), fresh)
    assert _names(tmp_path) == [path.name]
