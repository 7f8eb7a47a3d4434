"""What identifies a fit, so that a checkpoint resumes only the fit that wrote it."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from dataclasses import dataclass

import numpy as np
from torch import nn


@dataclass(frozen=True)
class Fingerprint:
    """`digest`: a hash of the fit's name, data, settings and parameter shapes; `unnamed`: the
    settings that are callables a checkpoint cannot identify (a lambda, a local function, a
    partial, an object without its own repr), so that a resumed fit cannot tell them apart."""

    digest: str
    unnamed: tuple[str, ...] = ()


def fingerprint(name: str, pieces, settings: dict, module: nn.Module) -> Fingerprint:
    """The Fingerprint of a fit named `name` on the data `pieces` (bytes or arrays, in order),
    with `settings` (JSON-able values, callables, or objects with a repr) and `module`'s parameters.
    A callable counts by its qualified name, where it has one that another process would share."""
    unnamed: list[str] = []
    canonical = _canonical(settings, "", unnamed)
    digest = hashlib.sha256(name.encode())
    for piece in pieces:
        digest.update(piece if isinstance(piece, bytes) else np.ascontiguousarray(piece, dtype=float).tobytes())
    digest.update(json.dumps(canonical, sort_keys=True).encode())
    for key, parameter in module.named_parameters():
        digest.update(f"{key}{tuple(parameter.shape)}".encode())
    return Fingerprint(digest.hexdigest(), tuple(unnamed))


def _canonical(value, path: str, unnamed: list[str]):
    """`value` as JSON: callables by module and qualified name, or recorded in `unnamed`; other
    objects by str()."""
    if isinstance(value, dict):
        return {str(k): _canonical(v, f"{path}[{k!r}]" if path else str(k), unnamed) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{path}[{i}]", unnamed) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    named = inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value)
    if named and "<" not in value.__qualname__:  # not a lambda, nor defined inside a function
        return f"{value.__module__}.{value.__qualname__}"
    if named or inspect.ismethod(value) or isinstance(value, functools.partial) or (
            callable(value) and type(value).__repr__ is object.__repr__):
        unnamed.append(path)
        return "<unnamed>"
    return str(value)
