"""Nested Python structures with tensors, saved to HDF5 through h5py: no pickle.

A structure of dicts (any hashable JSON-able keys, ints included), lists, tuples, numbers,
strings, None, torch tensors and numpy arrays is stored as a JSON skeleton (an attribute) whose
tensors are HDF5 datasets. Writing goes to a temporary file that replaces the target only when
complete, so an interrupted write never leaves a broken checkpoint.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import torch

_FORMAT = "physode-checkpoint-1"


def save(path: str | os.PathLike, tree) -> None:
    path = os.fspath(path)
    partial = path + ".partial"
    with h5py.File(partial, "w") as f:
        arrays: list = []
        skeleton = _encode(tree, arrays)
        for i, (array, is_tensor) in enumerate(arrays):
            dataset = f.create_dataset(f"array{i}", data=array)
            dataset.attrs["tensor"] = is_tensor
        f.attrs["format"] = _FORMAT
        f.attrs["skeleton"] = json.dumps(skeleton)
    os.replace(partial, path)


def load(path: str | os.PathLike):
    with h5py.File(os.fspath(path), "r") as f:
        if f.attrs.get("format") != _FORMAT:
            raise ValueError(f"{os.fspath(path)} is not a physode checkpoint (format {f.attrs.get('format')!r})")
        arrays = {name: (f[name][()], bool(f[name].attrs["tensor"])) for name in f}
        return _decode(json.loads(f.attrs["skeleton"]), arrays)


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


def _decode(node, arrays: dict):
    if not isinstance(node, dict):
        return node
    if "array" in node:
        array, is_tensor = arrays[node["array"]]
        return torch.from_numpy(np.array(array)) if is_tensor else np.array(array)
    if "dict" in node:
        return {_freeze(_decode(k, arrays)): _decode(v, arrays) for k, v in node["dict"]}
    if "tuple" in node:
        return tuple(_decode(v, arrays) for v in node["tuple"])
    return [_decode(v, arrays) for v in node["list"]]


def _freeze(key):
    return tuple(key) if isinstance(key, list) else key
