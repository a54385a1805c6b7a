"""Tensor sources that read one tensor at a time, so that ``pack`` holds one tensor in memory
whatever the size of the model.

A source is a ``Mapping[str, ndarray]``: ``names`` and ``info(name)`` (shape, dtype) come from
the file's header; ``source[name]`` reads that tensor only. Sources are picklable (they hold
their path and reopen the file in whichever process uses them), so process pools and Dask
workers read their own tensors straight from the input files.

- ``.safetensors``: the header parsed and checked here (every tensor's offsets inside the
  file), each tensor read with one file read; bfloat16 is read as float32 (exactly).
- ``*.safetensors.index.json``: a sharded checkpoint (the Hugging Face convention,
  ``{"weight_map": {name: shard file}}``); each tensor is read from its shard.
- ``.npz``: shapes and dtypes from each member's ``.npy`` header; members read on access.
- HDF5 (``.h5``, ``.hdf5``): datasets read on access.
- anything else the adapters read (``.pt``, ``.onnx``): read whole, once.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError


class TensorSource(Mapping[str, np.ndarray]):
    """Named tensors of one input; subclasses read lazily."""

    path: Path

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of a tensor without reading its data."""
        a = self[name]
        return a.shape, a.dtype

    def nbytes(self, name: str) -> int:
        shape, dtype = self.info(name)
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def subset(self, names: list[str]) -> TensorSource:
        """What a worker needs to read ``names``: a file source is its path, so itself."""
        return self

    def __getstate__(self) -> dict[str, Any]:  # open handles stay in their process
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class ArraySource(TensorSource):
    """Arrays already in memory (or any mapping of them)."""

    def __init__(self, tensors: Mapping[str, Any]):
        self.path = Path("<memory>")
        self.tensors = dict(tensors)

    def __getitem__(self, name: str) -> np.ndarray:
        return np.asarray(self.tensors[name])

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        a = self.tensors[name]
        return tuple(np.shape(a)), np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype

    def subset(self, names: list[str]) -> TensorSource:
        """Only these arrays, so that a worker process is not sent every tensor."""
        return ArraySource({n: self.tensors[n] for n in names})

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)


_ST_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2", "I8": "|i1", "U8": "|u1",
              "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8",
              "BOOL": "|b1"}


class SafetensorsSource(TensorSource):
    """A safetensors file, read with plain file reads at the offsets its header gives (no
    memory map: mapped pages of tensors already packed would stay in the resident set)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._header()

    def _header(self) -> dict[str, Any]:
        if getattr(self, "_hdr", None) is None:
            try:
                size = self.path.stat().st_size
                with open(self.path, "rb") as f:
                    n = int.from_bytes(f.read(8), "little")
                    if not 0 < n <= min(100_000_000, size - 8):
                        raise ValueError(f"header length {n}")
                    hdr = json.loads(f.read(n))
                if not isinstance(hdr, dict):
                    raise ValueError("the header is not an object")
                hdr.pop("__metadata__", None)
                for name, t in hdr.items():
                    self._check(name, t, size - 8 - n)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise FormatError(f"{self.path}: not a readable safetensors file ({exc})") \
                    from exc
            self._data_start = 8 + n
            self._hdr = hdr
        return self._hdr

    @staticmethod
    def _check(name: str, t: Any, data_size: int) -> None:
        code = _ST_DTYPES.get(t["dtype"])
        if code is None:
            raise ValueError(f"tensor {name!r}: dtype {t['dtype']!r} is not supported")
        shape = t["shape"]
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"tensor {name!r}: bad shape {shape!r}")
        b, e = t["data_offsets"]
        want = int(np.prod(shape, dtype=np.int64)) * np.dtype(code).itemsize
        if not (isinstance(b, int) and isinstance(e, int) and 0 <= b <= e <= data_size
                and e - b == want):
            raise ValueError(f"tensor {name!r}: data offsets {b}..{e} do not hold {want} "
                             f"bytes inside the file")

    def __getitem__(self, name: str) -> np.ndarray:
        t = self._header()[name]
        dtype = np.dtype(_ST_DTYPES[t["dtype"]])
        count = int(np.prod(t["shape"], dtype=np.int64))
        with open(self.path, "rb") as f:
            f.seek(self._data_start + t["data_offsets"][0])
            a = np.fromfile(f, dtype, count)
        if a.size != count:
            raise FormatError(f"{self.path}: tensor {name!r} is truncated")
        if t["dtype"] == "BF16":  # bfloat16 is the high half of a float32: exact
            a = (a.astype(np.uint32) << np.uint32(16)).view(np.float32)
        return a.reshape(t["shape"]).astype(a.dtype.newbyteorder("="), copy=False)

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and the dtype the tensor is read as (bfloat16 becomes float32)."""
        t = self._header()[name]
        code = "<f4" if t["dtype"] == "BF16" else _ST_DTYPES[t["dtype"]]
        return tuple(t["shape"]), np.dtype(code)

    def nbytes(self, name: str) -> int:
        """Bytes in the file (what shards are planned by)."""
        b, e = self._header()[name]["data_offsets"]
        return int(e - b)

    def __iter__(self) -> Iterator[str]:
        return iter(self._header())

    def __len__(self) -> int:
        return len(self._header())


class SafetensorsIndexSource(TensorSource):
    """A sharded safetensors checkpoint, through its ``*.index.json``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            index = json.loads(self.path.read_text())
            weight_map = index["weight_map"]
            assert isinstance(weight_map, dict)
        except (OSError, ValueError, KeyError, AssertionError) as exc:
            raise FormatError(f"{path}: not a safetensors index (needs a 'weight_map')") \
                from exc
        self.weight_map = {str(k): str(v) for k, v in weight_map.items()}
        self.shards = {f: SafetensorsSource(self.path.parent / f)
                       for f in dict.fromkeys(self.weight_map.values())}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.shards[self.weight_map[name]][name]

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        return self.shards[self.weight_map[name]].info(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.weight_map)

    def __len__(self) -> int:
        return len(self.weight_map)


class NpzSource(TensorSource):
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with zipfile.ZipFile(self.path) as z:
                self.names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
        except (OSError, zipfile.BadZipFile) as exc:
            raise FormatError(f"{path}: not a readable .npz archive ({exc})") from exc

    def _zip(self) -> Any:
        if getattr(self, "_z", None) is None:
            import threading

            self._z = np.load(self.path, allow_pickle=False)
            self._lock = threading.Lock()  # one archive handle: one reader at a time
        return self._z

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            z = self._zip()
            with self._lock:
                return z[name]
        except ValueError as exc:
            raise FormatError(f"{self.path}: member {name!r} is not readable ({exc})") from exc

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        try:
            with zipfile.ZipFile(self.path) as z, z.open(name + ".npy") as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(f)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise FormatError(f"{self.path}: member {name!r} has no readable header ({exc})") \
                from exc
        return tuple(shape), np.dtype(dtype)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class HDF5Source(TensorSource):
    def __init__(self, path: str | os.PathLike):
        import h5py

        self.path = Path(path)
        names: list[str] = []

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiub" and obj.shape != ():
                names.append(name)

        try:
            with h5py.File(self.path, "r") as f:
                f.visititems(visit)
        except OSError as exc:
            raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from exc
        self.names = names

    def _file(self) -> Any:
        if getattr(self, "_f", None) is None:
            import h5py

            self._f = h5py.File(self.path, "r")
        return self._f

    def __getitem__(self, name: str) -> np.ndarray:
        return self._file()[name][()]

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        d = self._file()[name]
        return tuple(d.shape), d.dtype

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def open_source(x: Any) -> TensorSource:
    """A source for a path (by extension) or a mapping of arrays."""
    if isinstance(x, TensorSource):
        return x
    if isinstance(x, Mapping):
        return ArraySource(x)
    path = Path(x)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    name = path.name.lower()
    if name.endswith(".index.json"):
        return SafetensorsIndexSource(path)
    if name.endswith(".safetensors"):
        return SafetensorsSource(path)
    if name.endswith(".npz"):
        return NpzSource(path)
    if name.endswith((".h5", ".hdf5")):
        return HDF5Source(path)
    from . import adapters

    return ArraySource(adapters.read(path))
