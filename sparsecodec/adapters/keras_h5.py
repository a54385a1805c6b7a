"""Keras HDF5 weight files (legacy ``.h5`` full models and weights files, Keras 3
``.weights.h5``), read and written with h5py only: no TensorFlow or Keras needed.

Every numeric dataset is a tensor, named by its path in the file (e.g.
``model_weights/dense/dense/kernel:0`` or ``layers/dense/vars/0``). Writing copies the original
file (``template``) and overwrites the datasets in place, keeping every group, attribute,
layer config and the model's structure, so the result loads wherever the original did.
Dense kernels are (inputs, outputs) and Conv2D kernels HWIO: pack with ``--layout keras``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..dtypes import widen
from ..errors import FormatError, converted
from ..io.files import atomic_output, open_regular
from ..io.hdf5 import (
    H5_ERRORS,
    check_dataset,
    h5_errors,
    load_h5py,
    numeric_datasets,
    open_hdf5,
    read_dataset,
)
from ..io.tensors import Budget, parse_json
from .source import TensorSource


class HDF5Source(TensorSource):
    """The numeric datasets of an HDF5 file, under the rules of ``io.hdf5``: reached through
    hard links, bytes stored in the file itself, expansion within the decode budget."""

    def __init__(self, path: str | os.PathLike, max_bytes: Budget = "auto"):
        self.path = Path(path)
        self.max_bytes = max_bytes
        fh, f = open_hdf5(self.path)
        with fh, f:
            self.names = numeric_datasets(f)

    def layout(self, name: str) -> str:
        """Keras weights files: Dense kernels are (in, out), Conv2D kernels HWIO."""
        return "keras"

    def _file(self) -> Any:
        if getattr(self, "_f", None) is None:
            self._fh, self._f = open_hdf5(self.path)
        return self._f

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        return read_dataset(self._file(), name, str(self.path), self.max_bytes)

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        if name not in self.names:
            raise KeyError(name)
        with h5_errors(f"{self.path}: dataset {name!r}"):
            d = self._file()[name]
            return tuple(d.shape), d.dtype


def source(path: str | os.PathLike, max_bytes: Budget = "auto") -> TensorSource:
    return HDF5Source(path, max_bytes)


def read(path: str | os.PathLike, max_bytes: Budget = "auto") -> dict[str, np.ndarray]:
    """Every numeric dataset, by path. Only datasets stored in the file itself are read
    (``io.hdf5``: no external storage, virtual datasets or links to other files), each within
    the decode budget ``max_bytes``."""
    fh, f = open_hdf5(path)
    with fh, f:
        return {name: read_dataset(f, name, str(path), max_bytes)
                for name in numeric_datasets(f)}


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
          template: str | os.PathLike | None = None) -> None:
    """A copy of ``template`` whose datasets named in ``tensors`` hold the new values (same
    shapes; cast to each dataset's dtype). Written through an exclusive temporary, renamed
    into place when complete; a template dataset stored outside the file is refused."""
    if template is None:
        raise FormatError("writing a Keras .h5 file needs the original as a template (its "
                          "layer structure is not in a packed file): unpack --template MODEL.h5")
    with open_regular(template, "template") as src, atomic_output(path) as out:
        shutil.copyfileobj(src, out)
        out.flush()
        with converted(f"{template}: not a readable HDF5 file", H5_ERRORS):
            f = load_h5py().File(out, "r+")
        with f, h5_errors(str(template)):
            present = set(numeric_datasets(f))
            for name, value in tensors.items():
                if name not in present:
                    continue
                ds = f[name]
                check_dataset(ds, f"{template}: dataset {name!r}", strict=False)
                a = widen(np.asarray(value))  # h5py knows no bfloat16: float32, exactly
                if a.shape != ds.shape:
                    raise FormatError(f"{name}: shape {a.shape} does not match the model's "
                                      f"{ds.shape}")
                ds[...] = a.astype(ds.dtype)


def sequential_spec(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The runtime layer list of a Keras Sequential ``.h5`` (:func:`_sequential_spec`); a
    ``model_config`` of the wrong shape is a :class:`FormatError`, not a stray exception."""
    with converted(f"{path}: model_config is not a Keras model description this runtime "
                   "reads", (KeyError, TypeError, ValueError, AttributeError, IndexError)):
        return _sequential_spec(path)


def _sequential_spec(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The ``runtime`` layer list of a Keras Sequential model saved as a legacy full ``.h5``
    (its ``model_config``): Dense, Conv2D (channels_last; "valid", or "same" with stride 1 and
    odd kernels), MaxPooling2D / AveragePooling2D ("valid"), Flatten, Activation, Dropout
    (skipped at inference). Images enter as NHWC, as in Keras. Weight names are the dataset
    paths ``read`` gives. Raises :class:`FormatError` for anything else."""
    fh, f = open_hdf5(path)
    with fh, f, h5_errors(str(path)):
        text = f.attrs.get("model_config")
        names = numeric_datasets(f)
    if text is None:
        raise FormatError(f"{path}: no model_config (a weights-only file has no layers)")
    cfg = parse_json(text if isinstance(text, (str, bytes)) else str(text),
                     f"{path}: model_config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("config"), dict):
        raise FormatError(f"{path}: model_config is not a Keras model description")
    if cfg.get("class_name") != "Sequential":
        raise FormatError(f"{path}: a {cfg.get('class_name')} model, not a Sequential one")

    def weight(layer: str, what: str) -> str | None:
        for n in names:
            parts = n.split("/")
            if len(parts) > 2 and parts[1] == layer and parts[-1] in (what, f"{what}:0"):
                return n
        return None

    spec: list[dict[str, Any]] = []
    spatial = False
    for L in cfg["config"]["layers"]:
        kind, c = L["class_name"], L["config"]
        name = c.get("name", "")
        if kind == "InputLayer":
            shape = c.get("batch_shape") or c.get("batch_input_shape") or []
            if len(shape) == 4:
                spec.append({"type": "transpose", "axes": [0, 3, 1, 2]})
                spatial = True
        elif kind == "Dense":
            spec.append({"type": "linear", "weight": weight(name, "kernel"),
                         "bias": weight(name, "bias"), "activation": c.get("activation",
                                                                             "linear")})
        elif kind == "Conv2D":
            kh, kw = c["kernel_size"]
            if c.get("data_format", "channels_last") != "channels_last" or \
                    tuple(c.get("dilation_rate", (1, 1))) != (1, 1) or c.get("groups", 1) != 1:
                raise FormatError(f"{name}: only channels_last, undilated, ungrouped Conv2D")
            if c["padding"] == "same":
                if tuple(c["strides"]) != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
                    raise FormatError(f"{name}: 'same' padding runs only with stride 1 and "
                                      "odd kernels")
                pad = [kh // 2, kw // 2]
            else:
                pad = [0, 0]
            spec.append({"type": "conv2d", "weight": weight(name, "kernel"),
                         "bias": weight(name, "bias"), "kernel_size": [kh, kw],
                         "stride": list(c["strides"]), "padding": pad,
                         "activation": c.get("activation", "linear")})
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            if c.get("padding", "valid") != "valid":
                raise FormatError(f"{name}: only 'valid' pooling")
            spec.append({"type": "maxpool2d" if kind == "MaxPooling2D" else "avgpool2d",
                         "kernel_size": list(c["pool_size"]),
                         "stride": list(c.get("strides") or c["pool_size"])})
        elif kind == "Flatten":
            spec.append({"type": "flatten", "order": "nhwc" if spatial else "nchw"})
            spatial = False
        elif kind == "Activation":
            spec.append({"type": "activation", "name": c["activation"]})
        elif kind != "Dropout":
            raise FormatError(f"{name}: Keras layer {kind} is not supported by the runtime")
    return spec
