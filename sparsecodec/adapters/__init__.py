"""Framework files <-> named arrays, both directions: one module per framework, each with an
eager ``read``, a lazy ``source`` (tensors read one at a time) and a ``write``. Which module
serves a path is decided in one place, ``io.filetypes``.

Implemented: NumPy ``.npz``, safetensors (``.safetensors`` and sharded ``*.index.json``),
ONNX initializers and Constant-node tensors (``.onnx``) and Keras HDF5 weights (``.h5``), the
last two written back into a copy of the original model (``template``), whose graph or layer
structure is kept; PyTorch state dicts (``.pt``, ``.pth``) when torch is installed. Nothing
here unpickles: ``.npz`` is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import FormatError
from ..io import filetypes
from ..io.tensors import Budget
from . import keras_h5, npz, onnx_file, safetensors_file, torch_file
from .source import ArraySource, TensorSource

MODULES: dict[str, ModuleType] = {"npz": npz, "safetensors": safetensors_file,
                                  "onnx": onnx_file, "keras": keras_h5, "torch": torch_file}
TEMPLATED = ("onnx", "keras")  # their structure is not in a packed file: write needs it
# by extension, for help texts: what each name reads and writes
READERS = {ext: MODULES[k].read for k, exts in filetypes.FRAMEWORK_EXTENSIONS.items()
           for ext in exts}
WRITERS = {ext: MODULES[k].write for k, exts in filetypes.FRAMEWORK_EXTENSIONS.items()
           for ext in exts if ext != ".index.json"}


def _module(path: str | os.PathLike, writing: bool = False) -> ModuleType:
    kind = filetypes.framework_kind(path)
    if kind is None or (writing and filetypes.is_shard_index(path)):
        known = WRITERS if writing else READERS
        raise FormatError(f"{path}: unknown extension {Path(path).suffix or '(none)'!r}; "
                          f"known: {', '.join(sorted(known))}")
    return MODULES[kind]


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a framework file, by name, as numpy arrays."""
    module = _module(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {path}")
    return module.read(path)


def source(path: str | os.PathLike, max_bytes: Budget = "auto") -> TensorSource:
    """A lazy source of a framework file, with the layout of each weight where the file
    says it (``pack --layout auto``)."""
    module = _module(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {path}")
    return module.source(path, max_bytes)


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
          template: str | os.PathLike | None = None) -> None:
    """Write named arrays in the format the extension names (``template``: the original model,
    for formats whose graph is not in the arrays: ONNX, Keras)."""
    module = _module(path, writing=True)
    if filetypes.framework_kind(path) in TEMPLATED:
        module.write(path, tensors, template)
    else:
        module.write(path, tensors)


__all__ = ["MODULES", "READERS", "WRITERS", "ArraySource", "TensorSource", "read", "source",
           "write"]
