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

import lzma
import math
import os
import tokenize
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError, converted
from .io.files import open_regular, read_small, sibling
from .io.sharded import MAX_INDEX
from .io.tensors import Budget, budget_limit, check_shape, parse_json


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

    def layout(self, name: str) -> str:
        """How the input stores this weight (``pack --layout auto``): "torch" for (out, in)
        and OIHW, "keras" for (in, out) and HWIO, "as-is" when nothing says."""
        return "as-is"

    def subset(self, names: list[str]) -> TensorSource:
        """What a worker needs to read ``names``: a file source is its path, so itself."""
        return self

    def __getstate__(self) -> dict[str, Any]:  # open handles stay in their process
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class ArraySource(TensorSource):
    """Arrays already in memory (or any mapping of them), with the layout of each when the
    file they came from says it (``layouts``; "as-is" for the others)."""

    def __init__(self, tensors: Mapping[str, Any], layouts: Mapping[str, str] | None = None):
        self.path = Path("<memory>")
        self.tensors = dict(tensors)
        self.layouts = dict(layouts or {})

    def layout(self, name: str) -> str:
        return self.layouts.get(name, "as-is")

    def __getitem__(self, name: str) -> np.ndarray:
        return np.asarray(self.tensors[name])

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        a = self.tensors[name]
        return tuple(np.shape(a)), np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype

    def subset(self, names: list[str]) -> TensorSource:
        """Only these arrays, so that a worker process is not sent every tensor."""
        return ArraySource({n: self.tensors[n] for n in names},
                           {n: self.layouts[n] for n in names if n in self.layouts})

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)


# what zipfile and its decompressors raise on a damaged archive
# and what numpy's .npy header parser raises on a damaged header (it tokenizes a Python literal)
_ZIP_ERRORS = (ValueError, OSError, zipfile.BadZipFile, KeyError, EOFError, zlib.error,
               lzma.LZMAError, NotImplementedError, RuntimeError, tokenize.TokenError,
               SyntaxError, TypeError, RecursionError)

_ST_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2", "I8": "|i1", "U8": "|u1",
              "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8",
              "BOOL": "|b1"}


class SafetensorsSource(TensorSource):
    """A safetensors file, read with plain file reads at the offsets its header gives (no
    memory map: mapped pages of tensors already packed would stay in the resident set)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._header()

    def layout(self, name: str) -> str:
        """From the header's ``__metadata__`` "format" (the Hugging Face convention): "pt"
        checkpoints hold torch's (out, in) and OIHW weights, "tf" ones Keras's."""
        return {"pt": "torch", "tf": "keras"}.get(str(self.framework), "as-is")

    def _header(self) -> dict[str, Any]:
        if getattr(self, "_hdr", None) is None:
            try:
                with open_regular(self.path, "safetensors file") as f:
                    size = os.fstat(f.fileno()).st_size
                    n = int.from_bytes(f.read(8), "little")
                    if not 0 < n <= min(100_000_000, size - 8):
                        raise ValueError(f"header length {n}")
                    hdr = parse_json(f.read(n), "the header")
                if not isinstance(hdr, dict):
                    raise ValueError("the header is not an object")
                meta = hdr.pop("__metadata__", None)
                # "pt", "tf", ... (public: kept when the source is pickled for a worker)
                self.framework = meta.get("format") if isinstance(meta, dict) else None
                for name, t in hdr.items():
                    self._check(name, t, size - 8 - n)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise FormatError(f"{self.path}: not a readable safetensors file ({exc})") \
                    from None
            self._data_start = 8 + n
            self._hdr = hdr
        return self._hdr

    @staticmethod
    def _check(name: str, t: Any, data_size: int) -> None:
        at = f"tensor {name[:80]!r}"
        if not isinstance(t, dict) or not {"dtype", "shape", "data_offsets"} <= set(t):
            raise ValueError(f"{at}: needs dtype, shape and data_offsets")
        code = _ST_DTYPES.get(t["dtype"]) if isinstance(t["dtype"], str) else None
        if code is None:
            raise ValueError(f"{at}: dtype {str(t['dtype'])[:20]!r} is not supported")
        check_shape(f"{at}: shape", t["shape"])
        offsets = t["data_offsets"]
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ValueError(f"{at}: data_offsets must be two integers")
        b, e = offsets
        want = math.prod(t["shape"]) * np.dtype(code).itemsize
        if not (0 <= b <= e <= data_size and e - b == want):
            raise ValueError(f"{at}: data offsets {b}..{e} do not hold {want} bytes inside "
                             f"the file")

    def __getitem__(self, name: str) -> np.ndarray:
        t = self._header()[name]
        dtype = np.dtype(_ST_DTYPES[t["dtype"]])
        count = int(np.prod(t["shape"], dtype=np.int64))
        with open_regular(self.path, "safetensors file") as f:
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
        index = parse_json(read_small(self.path, "index", MAX_INDEX), f"{path}: the index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise FormatError(f"{path}: not a safetensors index (needs a 'weight_map')")
        for file in dict.fromkeys(weight_map.values()):  # each shard once, not per tensor
            sibling(self.path, file)
        self.weight_map = dict(weight_map)
        self.shards = {f: SafetensorsSource(self.path.parent / f)
                       for f in dict.fromkeys(self.weight_map.values())}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.shards[self.weight_map[name]][name]

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        return self.shards[self.weight_map[name]].info(name)

    def layout(self, name: str) -> str:
        return self.shards[self.weight_map[name]].layout(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.weight_map)

    def __len__(self) -> int:
        return len(self.weight_map)


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

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class HDF5Source(TensorSource):
    """The numeric datasets of an HDF5 file, under the rules of ``io.hdf5``: reached through
    hard links, bytes stored in the file itself, expansion within the decode budget."""

    def __init__(self, path: str | os.PathLike, max_bytes: Budget = "auto"):
        from .io.hdf5 import numeric_datasets, open_hdf5

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
            from .io.hdf5 import open_hdf5

            self._fh, self._f = open_hdf5(self.path)
        return self._f

    def __getitem__(self, name: str) -> np.ndarray:
        from .io.hdf5 import read_dataset

        if name not in self.names:
            raise KeyError(name)
        return read_dataset(self._file(), name, str(self.path), self.max_bytes)

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        from .io.hdf5 import h5_errors

        if name not in self.names:
            raise KeyError(name)
        with h5_errors(f"{self.path}: dataset {name!r}"):
            d = self._file()[name]
            return tuple(d.shape), d.dtype

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def open_source(x: Any, max_bytes: Budget = "auto") -> TensorSource:
    """A source for a path (by extension) or a mapping of arrays. ``max_bytes``: the decode
    budget of compressed inputs (``.npz`` members, chunked HDF5 datasets)."""
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
        return NpzSource(path, max_bytes)
    if name.endswith((".h5", ".hdf5")):
        return HDF5Source(path, max_bytes)
    from . import adapters

    return ArraySource(*adapters.read_with_layouts(path))
