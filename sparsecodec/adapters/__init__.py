"""Framework files <-> ``dict[str, ndarray]``, both directions, chosen by file extension.

Implemented: NumPy ``.npz``, safetensors (``.safetensors``), ONNX initializers (``.onnx``)
and Keras HDF5 weights (``.h5``), the last two written back into a copy of the original model
(``template``), whose graph or layer structure is kept; PyTorch state dicts (``.pt``,
``.pth``) when torch is installed. Nothing here unpickles: ``.npz`` is
read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import FormatError
from . import keras_h5, npz, onnx_file, safetensors_file, torch_file

READERS = {".npz": npz.read, ".safetensors": safetensors_file.read, ".onnx": onnx_file.read,
           ".h5": keras_h5.read, ".hdf5": keras_h5.read, ".pt": torch_file.read,
           ".pth": torch_file.read}
WRITERS = {".npz": npz.write, ".safetensors": safetensors_file.write, ".onnx": onnx_file.write,
           ".h5": keras_h5.write, ".hdf5": keras_h5.write, ".pt": torch_file.write,
           ".pth": torch_file.write}
TEMPLATED = (".onnx", ".h5", ".hdf5")  # their structure is not in a packed file


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


def read_with_layouts(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``read``, and how the file stores each weight where it says (``pack --layout auto``):
    every tensor of a torch state dict is "torch"; an ONNX model's weights follow the
    operators that use them (``onnx_file.read_with_layouts``, one load of the model); other
    files give no layouts here."""
    ext = _kind(path, READERS)
    if ext == ".onnx":
        return onnx_file.read_with_layouts(path)
    tensors = read(path)
    return tensors, dict.fromkeys(tensors, "torch") if ext in (".pt", ".pth") else {}


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
          template: str | os.PathLike | None = None) -> None:
    """Write named arrays in the format the extension names (``template``: the original model,
    for formats whose graph is not in the arrays: ONNX)."""
    ext = _kind(path, WRITERS)
    if ext in TEMPLATED:
        WRITERS[ext](path, tensors, template)  # type: ignore[call-arg]
    else:
        WRITERS[ext](path, tensors)


__all__ = ["READERS", "WRITERS", "read", "read_with_layouts", "write"]
