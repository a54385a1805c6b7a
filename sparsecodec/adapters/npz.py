"""NumPy ``.npz`` archives (never unpickled)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping

import numpy as np

from ..errors import FormatError


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise FormatError(f"{path}: not a readable .npz archive ({exc})") from exc


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    np.savez(path, **{name: np.asarray(a) for name, a in tensors.items()})
