"""NumPy ``.npz`` archives: never unpickled, each member checked (its ``.npy`` header against
the bytes the member holds, its expansion against the decode budget) before anything is
allocated, and read on access."""

from __future__ import annotations

import lzma
import math
import os
import tokenize
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..dtypes import widen
from ..errors import FormatError, converted
from ..io.files import atomic_output, open_regular
from ..io.tensors import Budget, budget_limit, check_shape
from .source import TensorSource

# what zipfile and its decompressors raise on a damaged archive
# and what numpy's .npy header parser raises on a damaged header (it tokenizes a Python literal)
_ZIP_ERRORS = (ValueError, OSError, zipfile.BadZipFile, KeyError, EOFError, zlib.error,
               lzma.LZMAError, NotImplementedError, RuntimeError, tokenize.TokenError,
               SyntaxError, TypeError, RecursionError)


class NpzSource(TensorSource):
    """A ``.npz`` archive: each member read on access, never unpickled. A member whose ``.npy``
    header claims more bytes than the member holds, or that expands past the decode budget
    (``max(256 MiB, 1024 x its compressed bytes)``), is refused before anything is allocated."""

    def __init__(self, path: str | os.PathLike, max_bytes: Budget = "auto"):
        self.path = Path(path)
        self.max_bytes = max_bytes
        with converted(f"{path}: not a readable .npz archive", _ZIP_ERRORS), \
                open_regular(self.path, ".npz archive") as fh, zipfile.ZipFile(fh) as z:
            self.names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]

    def _zip(self) -> Any:
        if getattr(self, "_z", None) is None:
            import threading

            self._z = zipfile.ZipFile(open_regular(self.path, ".npz archive"))
            self._lock = threading.Lock()  # one archive handle: one reader at a time
        return self._z

    def _member(self, name: str) -> tuple[Any, tuple[int, ...], np.dtype, bool]:
        """(open member positioned at its data, shape, dtype, fortran order), checked."""
        z = self._zip()
        at = f"{self.path}: member {name!r}"
        info = z.getinfo(name + ".npy")
        limit = budget_limit(info.compress_size, self.max_bytes)
        if limit is not None and info.file_size > limit:
            raise FormatError(f"{at}: {info.compress_size:,} compressed bytes would expand to "
                              f"{info.file_size:,}, over the decode budget of {limit:,} bytes")
        f = z.open(info)
        try:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(f)
            if dtype.hasobject or dtype.kind not in "biufc":
                raise FormatError(f"{at}: dtype {dtype} is not a plain number type")
            check_shape(f"{at}: shape", list(shape))
            if math.prod(shape) * dtype.itemsize > info.file_size:
                raise FormatError(f"{at}: its header claims {math.prod(shape):,} elements of "
                                  f"{dtype}, more than the member's {info.file_size:,} bytes")
        except BaseException:
            f.close()
            raise
        return f, tuple(shape), dtype, fortran

    def __getitem__(self, name: str) -> np.ndarray:
        with converted(f"{self.path}: member {name!r} is not readable", _ZIP_ERRORS):
            self._zip()
            with self._lock:
                f, shape, dtype, fortran = self._member(name)
                a = np.empty(math.prod(shape), dtype)
                with f:  # straight into the array: one copy of the member in memory
                    view, got = memoryview(a).cast("B"), 0
                    while got < a.nbytes and (n := f.readinto(view[got:])):
                        got += n
            if got != a.nbytes:
                raise FormatError(f"{self.path}: member {name!r} is truncated")
            return a.reshape(shape[::-1]).T if fortran else a.reshape(shape)

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        with converted(f"{self.path}: member {name!r} has no readable header", _ZIP_ERRORS):
            self._zip()
            with self._lock:
                f, shape, dtype, _ = self._member(name)
                f.close()
        return shape, dtype


def source(path: str | os.PathLike, max_bytes: Budget = "auto") -> TensorSource:
    return NpzSource(path, max_bytes)


def read(path: str | os.PathLike, max_bytes: Budget = "auto") -> dict[str, np.ndarray]:
    return dict(NpzSource(path, max_bytes))


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    """bfloat16 arrays are written as float32 (exactly): ``.npy`` has no bfloat16 type, and
    numpy would store them as anonymous 2-byte records."""
    with atomic_output(path) as fh:
        np.savez(fh, **{name: widen(np.asarray(a)) for name, a in tensors.items()})
