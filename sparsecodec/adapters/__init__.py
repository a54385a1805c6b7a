"""Framework files <-> ``dict[str, ndarray]``, both directions, chosen by file extension.

Implemented so far: NumPy ``.npz``, safetensors (``.safetensors``) and ONNX initializers
(``.onnx``; writing needs the original model as a template for its graph). Keras ``.h5`` and
PyTorch state dicts come with the rest of the adapters issue. Nothing here unpickles: ``.npz`` is
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import FormatError
from . import npz, onnx_file, safetensors_file

READERS = {".npz": npz.read, ".safetensors": safetensors_file.read, ".onnx": onnx_file.read}
WRITERS = {".npz": npz.write, ".safetensors": safetensors_file.write, ".onnx": onnx_file.write}


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


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
          template: str | os.PathLike | None = None) -> None:
    """Write named arrays in the format the extension names (``template``: the original model,
    for formats whose graph is not in the arrays: ONNX)."""
    ext = _kind(path, WRITERS)
    if ext == ".onnx":
        onnx_file.write(path, tensors, template)
    else:
        WRITERS[ext](path, tensors)


__all__ = ["READERS", "WRITERS", "read", "write"]
