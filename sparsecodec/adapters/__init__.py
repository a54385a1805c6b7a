"""Framework files <-> ``dict[str, ndarray]``, both directions, chosen by file extension.

Implemented so far: NumPy ``.npz`` and safetensors (``.safetensors``, optional extra). Keras
``.h5``, ONNX and PyTorch state dicts come with the rest of the adapters issue. Nothing here
unpickles: ``.npz`` is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import FormatError
from . import npz, safetensors_file

READERS = {".npz": npz.read, ".safetensors": safetensors_file.read}
WRITERS = {".npz": npz.write, ".safetensors": safetensors_file.write}


def _kind(path: str | os.PathLike, table: Mapping) -> str:
    ext = Path(path).suffix.lower()
    if ext not in table:
        raise FormatError(f"{path}: unknown extension {ext or '(none)'!r}; known: "
                          f"{', '.join(sorted(table))}")
    return ext


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a framework file, by name, as numpy arrays."""
    ext = _kind(path, READERS)
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {path}")
    return READERS[ext](path)


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    """Write named arrays in the format the extension names."""
    WRITERS[_kind(path, WRITERS)](path, tensors)


__all__ = ["READERS", "WRITERS", "read", "write"]
