"""safetensors files, through the ``safetensors`` package (optional: ``pip install
safetensors``); its header is validated by that library before any data is read."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..errors import FormatError
from ..io.files import atomic_output


def _lib():
    try:
        import safetensors.numpy as stn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FormatError("reading or writing .safetensors needs the safetensors package: "
                          "python -m pip install safetensors") from exc
    return stn


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    stn = _lib()
    try:
        return dict(stn.load_file(str(path)))
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError
        raise FormatError(f"{path}: not a readable safetensors file ({exc})") from exc


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    data = _lib().save({n: np.ascontiguousarray(a) for n, a in tensors.items()})
    with atomic_output(path) as fh:
        fh.write(data)
