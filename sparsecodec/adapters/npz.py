"""NumPy ``.npz`` archives (never unpickled; members checked before anything is allocated:
``sources.NpzSource``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..io.files import atomic_output
from ..io.tensors import Budget


def read(path: str | os.PathLike, max_bytes: Budget = "auto") -> dict[str, np.ndarray]:
    from ..sources import NpzSource

    src = NpzSource(path, max_bytes)
    return {name: src[name] for name in src}


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    with atomic_output(path) as fh:
        np.savez(fh, **{name: np.asarray(a) for name, a in tensors.items()})
