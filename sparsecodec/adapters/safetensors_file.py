"""safetensors files: the header parsed and checked here (every tensor's offsets inside the
file) before any data is read, each tensor read with one file read (bfloat16 as
``ml_dtypes.bfloat16``, bit for bit); sharded checkpoints through their ``*.index.json`` (the
Hugging Face convention, ``{"weight_map": {name: shard file}}``). Written here too (the format
is an 8-byte header length, a JSON header and the tensors' bytes), so that bfloat16 tensors
are written as BF16 and no package is needed."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..dtypes import bfloat16, from_bits, is_bfloat16
from ..errors import FormatError
from ..io.files import atomic_output, open_regular, read_small, sibling
from ..io.filetypes import is_shard_index
from ..io.sharded import MAX_INDEX
from ..io.tensors import Budget, check_shape, parse_json
from .source import TensorSource

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
        a = a.reshape(t["shape"]).astype(a.dtype.newbyteorder("="), copy=False)
        return from_bits(a) if t["dtype"] == "BF16" else a

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of a tensor, from the header."""
        t = self._header()[name]
        if t["dtype"] == "BF16":
            return tuple(t["shape"]), bfloat16()
        return tuple(t["shape"]), np.dtype(_ST_DTYPES[t["dtype"]])

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


def source(path: str | os.PathLike, max_bytes: Budget = "auto") -> TensorSource:
    """A lazy source: the shards of a ``*.index.json``, else one file."""
    if is_shard_index(path):
        return SafetensorsIndexSource(path)
    return SafetensorsSource(path)


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor, by name, read through the same checked header as :func:`source`."""
    return dict(source(path))


_CODES = {np.dtype(code).str: name for name, code in _ST_DTYPES.items() if name != "BF16"}


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
          metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (their bytes one after another, in their order, after a header
    padded with spaces to a multiple of 8 bytes) and the string ``metadata``."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    arrays, offset = [], 0
    for name, a in tensors.items():
        a = np.asarray(a)
        if is_bfloat16(a.dtype):
            code, a = "BF16", a.view(np.uint16)
        else:
            a = a.astype(a.dtype.newbyteorder("<"), copy=False)
            code = _CODES.get(a.dtype.str)
            if code is None:
                raise FormatError(f"tensor {name!r}: dtype {a.dtype} has no safetensors code")
        a = np.require(a, requirements="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        header[str(name)] = {"dtype": code, "shape": list(a.shape),
                             "data_offsets": [offset, offset + a.nbytes]}
        arrays.append(a)
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with atomic_output(path) as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        for a in arrays:
            fh.write(a.tobytes())
