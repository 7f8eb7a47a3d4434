"""Nested Python structures with tensors, saved to HDF5 through h5py: no pickle.

A structure of dicts (any hashable JSON-able keys, ints included), lists, tuples, numbers,
strings, None, torch tensors and numpy arrays is stored as a JSON skeleton (the root dataset
`skeleton`, UTF-8 bytes) whose arrays are the root datasets array0, array1, ... (each with a boolean
attribute `tensor`), next to the fixed-length root attribute `format`. Nothing is a variable-length
string: HDF5 decodes those from its global heap, which can hang or crash on a damaged file. The
file is built in memory and written atomically (physode.files), so a failed or interrupted write
never leaves a broken checkpoint. Loading reads only that layout, from a self-contained HDF5 file,
and refuses anything else with a ValueError naming the path and saying how to recover.
"""

from __future__ import annotations

import io
import json
import os
import re

import h5py
import numpy as np
import torch

from ..files import FileKind, open_hdf5, write_atomic

_FORMAT = b"physode-checkpoint-2"
_DEPTH = 100  # the deepest skeleton read; what physode writes is a few levels deep
CHECKPOINT = FileKind("a readable physode checkpoint (an HDF5 file written by fit(checkpoint=...))",
                      "delete it or pass resume=False to start over")


def save(path: str | os.PathLike, tree) -> None:
    """Write `tree` to `path` atomically; a failed write raises OSError naming `path` and leaves the old file."""
    arrays: list = []
    skeleton = json.dumps(_encode(tree, arrays)).encode()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["format"] = np.bytes_(_FORMAT)
        f.create_dataset("skeleton", data=np.frombuffer(skeleton, dtype=np.uint8))
        for i, (array, is_tensor) in enumerate(arrays):
            dataset = f.create_dataset(f"array{i}", data=array)
            dataset.attrs["tensor"] = is_tensor
    write_atomic(path, buffer.getbuffer())


def load(path: str | os.PathLike):
    """The structure saved at `path`; FileNotFoundError if there is none, ValueError (saying how to
    recover) if the file is not a checkpoint in full."""
    with open_hdf5(path, CHECKPOINT) as f:
        if set(f.attrs) != {"format"}:
            raise ValueError(f"its root attributes are {sorted(f.attrs)}, not ['format'] (another kind of HDF5 file)")
        if f.attrs.get_id("format").dtype.kind == "O":
            raise ValueError("its 'format' attribute is a variable-length string: a checkpoint of an earlier "
                             "physode, which this version does not read, or another kind of HDF5 file")
        written = _attribute(f, "format", "S")
        if written != _FORMAT:
            raise ValueError(f"its format is {written.decode(errors='replace')!r}, not {_FORMAT.decode()!r}")
        if "skeleton" not in f:
            raise ValueError("it has no 'skeleton' dataset")
        arrays = {name: _array(f, name) for name in f if name != "skeleton"}
        return _decode(_skeleton(_contents(f, "skeleton", "u", set())), arrays, 0)


def _array(f: h5py.File, name: str) -> tuple[np.ndarray, bool]:
    """The array `name` and whether it was a tensor."""
    if not re.fullmatch(r"array[0-9]+", name):
        raise ValueError(f"it holds {name!r}; a checkpoint holds only the datasets skeleton, array0, array1, ...")
    return _contents(f, name, "biufc", {"tensor"}), bool(_attribute(f[name], "tensor", "b"))


def _contents(f: h5py.File, name: str, kinds: str, attributes: set) -> np.ndarray:
    """The data of the root dataset `name`, if it is a hard link to a contiguous dataset of a numpy kind
    in `kinds` with all its data stored (so reading it allocates no more than the file holds) and with
    exactly the attributes `attributes`."""
    dataset = f[name] if isinstance(f.get(name, getlink=True), h5py.HardLink) else None
    if not isinstance(dataset, h5py.Dataset) or set(dataset.attrs) != attributes:
        raise ValueError(f"{name!r} is not a dataset with the attributes {sorted(attributes)} (a link, a group, or "
                         "other attributes)")
    stored = dataset.id.get_storage_size()
    if dataset.dtype.kind not in kinds or dataset.chunks is not None or stored != dataset.nbytes:
        raise ValueError(f"{name!r} is not a contiguous dataset of numpy kind {'/'.join(kinds)} with all its data "
                         f"stored (dtype {dataset.dtype}, chunks {dataset.chunks}, {stored} of {dataset.nbytes} bytes)")
    return dataset[()]


def _attribute(owner, name: str, kind: str):
    """The scalar attribute `name` of `owner`, read only once its type is known to be of numpy kind `kind`."""
    attribute = owner.attrs.get_id(name)
    if attribute.dtype.kind != kind or attribute.shape != ():
        raise ValueError(f"the attribute {name!r} of {owner.name} is not a scalar of numpy kind {kind!r} "
                         f"(dtype {attribute.dtype}, shape {attribute.shape})")
    return owner.attrs[name]


def _skeleton(data: np.ndarray) -> object:
    try:
        return json.loads(data.tobytes())
    except RecursionError as error:
        raise ValueError(f"its skeleton is nested deeper than {_DEPTH} levels") from error
    except ValueError as error:
        raise ValueError(f"its skeleton is not UTF-8 JSON ({error})") from error


def _encode(value, arrays: list):
    if isinstance(value, torch.Tensor):
        arrays.append((value.detach().cpu().numpy(), True))
        return {"array": f"array{len(arrays) - 1}"}
    if isinstance(value, np.ndarray):
        arrays.append((value, False))
        return {"array": f"array{len(arrays) - 1}"}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return {"list": [_encode(v, arrays) for v in value]}
    if isinstance(value, (np.generic,)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint")


def _decode(node, arrays: dict, depth: int):
    """The value of a skeleton node: a JSON scalar, or {"array": name}, {"tuple": [...]}, {"list": [...]}
    or {"dict": [[key, value], ...]}."""
    if depth > _DEPTH:
        raise ValueError(f"its skeleton is nested deeper than {_DEPTH} levels")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    kind, value = next(iter(node.items())) if isinstance(node, dict) and len(node) == 1 else (None, None)
    if kind == "array" and isinstance(value, str) and value in arrays:
        array, is_tensor = arrays[value]
        return torch.from_numpy(np.array(array)) if is_tensor else np.array(array)
    if kind in ("tuple", "list") and isinstance(value, list):
        items = [_decode(v, arrays, depth + 1) for v in value]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict" and isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        pairs = [(_decode(k, arrays, depth + 1), _decode(v, arrays, depth + 1)) for k, v in value]
        if all(_hashable(k) for k, _ in pairs):
            return dict(pairs)
    raise ValueError(f"its skeleton has, at depth {depth}, {_described(node)}: not a value, an existing array, "
                     "a tuple, a list or a dict of hashable keys")


def _described(node) -> str:
    if isinstance(node, dict):
        return f"an object with the keys {sorted(map(str, node))[:4]}"
    return f"a {type(node).__name__}"


def _hashable(key) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True
