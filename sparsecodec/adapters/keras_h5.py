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
from typing import Any

import h5py
import numpy as np

from ..errors import FormatError


def is_sparsecodec(path: str | os.PathLike) -> bool:
    """True for an HDF5 file written by sparsecodec's own backend."""
    try:
        with h5py.File(path, "r") as f:
            return "sparsecodec" in f.attrs
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from exc


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiub" and obj.shape != ():
            out[name] = obj[()]

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from exc
    return out


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
          template: str | os.PathLike | None = None) -> None:
    """A copy of ``template`` whose datasets named in ``tensors`` hold the new values (same
    shapes; cast to each dataset's dtype)."""
    if template is None:
        raise FormatError("writing a Keras .h5 file needs the original as a template (its "
                          "layer structure is not in a packed file): unpack --template MODEL.h5")
    shutil.copyfile(template, path)
    with h5py.File(path, "r+") as f:
        for name, value in tensors.items():
            if name not in f or not isinstance(f[name], h5py.Dataset):
                continue
            ds = f[name]
            a = np.asarray(value)
            if a.shape != ds.shape:
                raise FormatError(f"{name}: shape {a.shape} does not match the model's "
                                  f"{ds.shape}")
            ds[...] = a.astype(ds.dtype)
