"""The container file (spec: ``formats/container.md``): many named tensors in one file.

Reading validates the whole header before touching a blob, then maps the file and hands each
component to its format's ``from_components`` as an array view of the mapping (no copy).
Writing streams: tensors are added one at a time, their blobs go to a temporary data file, and
the finished file is assembled under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FormatError, SparseCodecError
from .files import atomic_output, check_unchanged, open_regular, read_at
from .tensors import (
    DTYPES,
    MAX_NAME,
    Budget,
    TensorInfo,
    build,
    check_budget,
    check_format_name,
    check_name,
    check_shape,
    describe,
    parse_json,
    storable,
)

MAGIC = b"\x89SPC\r\n\x1a\n"
VERSION = 2        # version 2 adds the header's CRC-32 (version 1 had a reserved zero there)
READABLE = (1, 2)  # version 1 files are still read (their header is not checksummed)
PREAMBLE = struct.Struct("<8sIIQ")  # magic, version, header_crc32, header_length
ALIGN = 64
MAX_HEADER = 16 << 20      # header bytes (about 15,000 tensors of seven components)

if TYPE_CHECKING:
    from ..formats.base import Encoded

PathLike = str | os.PathLike


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def file_cost(tensor: Encoded | np.ndarray) -> int:
    """Bytes one tensor (encoded, or a plain array) adds to a container: its components, its
    header entry, and the expected alignment padding (half an alignment unit per component).
    The header entry is measured with 10-digit offsets and checksums, so the estimate is
    within a few bytes."""
    entry, comps = describe(tensor)
    blob = {"dtype": "<u8", "shape": [0], "offset": 10**9, "length": 10**9, "crc32": 10**9}
    entry["components"] = {c: {**blob, "shape": list(a.shape)} for c, a in comps.items()}
    header = len(json.dumps({"t": entry}, separators=(",", ":")))
    return tensor.nbytes + header + len(comps) * ALIGN // 2


# --------------------------------------------------------------------------- writing


class ContainerWriter:
    """Write tensors one at a time; the file appears at ``path`` only when ``close()`` succeeds.

    >>> with ContainerWriter("model.spc", metadata={"model": "mlp"}) as w:  # doctest: +SKIP
    ...     w.add("fc1", sc.encode(W1, format="sham"))
    ...     w.add("fc1.bias", b1)

    The blobs collect in an anonymous temporary file (it has no name, so nothing is left behind
    if the process dies); ``close()`` writes preamble, header and blobs through
    :func:`~sparsecodec.io.files.atomic_output` (an exclusive, unpredictable temporary renamed
    into place).
    """

    def __init__(self, path: PathLike, metadata: Mapping[str, str] | None = None):
        self.path = Path(path)
        self.metadata = dict(metadata or {})
        for k, v in self.metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SparseCodecError(f"metadata must map strings to strings, found {k!r}: {v!r}")
        self._data = tempfile.TemporaryFile(dir=self.path.parent)  # noqa: SIM115
        self._tensors: dict[str, dict[str, Any]] = {}
        self._offset = 0
        self._closed = False

    def add(self, name: str, tensor: Encoded | np.ndarray) -> None:
        """Append one tensor: an encoded matrix, or any array (stored as format ``array``)."""
        if self._closed:
            raise SparseCodecError("the writer is closed")
        check_name(name)
        if name in self._tensors:
            raise SparseCodecError(f"tensor {name!r} is added twice")
        entry, comps = describe(tensor)
        entry["components"] = {c: self._write_blob(a) for c, a in comps.items()}
        self._tensors[name] = entry

    def _write_blob(self, a: np.ndarray) -> dict[str, Any]:
        a, code = storable(a)
        pad = _align(self._offset) - self._offset
        if pad:
            self._data.write(b"\0" * pad)
            self._offset += pad
        raw = a.data.cast("B") if a.size else memoryview(b"")
        self._data.write(raw)
        entry = {"dtype": code, "shape": list(a.shape), "offset": self._offset,
                 "length": a.nbytes, "crc32": zlib.crc32(raw)}
        self._offset += a.nbytes
        return entry

    def close(self) -> None:
        """Write the header, append the data section and move the file into place."""
        if self._closed:
            return
        self._closed = True
        header = json.dumps({"data_length": self._offset, "metadata": self.metadata,
                             "tensors": self._tensors}, separators=(",", ":"),
                            ensure_ascii=False).encode("utf-8")
        if len(header) > MAX_HEADER:
            self._data.close()
            raise SparseCodecError(f"{self.path}: the header would take {len(header):,} bytes, "
                                   f"over the {MAX_HEADER:,}-byte limit (too many tensors for "
                                   "one file: write shards)")
        data_start = _align(PREAMBLE.size + len(header))
        try:
            self._data.flush()
            self._data.seek(0)
            with atomic_output(self.path) as out:
                out.write(PREAMBLE.pack(MAGIC, VERSION, zlib.crc32(header), len(header)))
                out.write(header)
                out.write(b"\0" * (data_start - PREAMBLE.size - len(header)))
                while chunk := self._data.read(1 << 24):
                    out.write(chunk)
        finally:
            self._data.close()

    def abort(self) -> None:
        """Drop everything written so far; no file appears at ``path``."""
        if not self._closed:
            self._closed = True
            self._data.close()

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def save_container(path: PathLike, tensors: Mapping[str, Encoded | np.ndarray],
                   metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (name -> encoded matrix or array) and string ``metadata`` to ``path``."""
    with ContainerWriter(path, metadata) as w:
        for name, t in tensors.items():
            w.add(name, t)


# --------------------------------------------------------------------------- reading


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class ContainerFile(Mapping[str, Any]):
    """An open container: ``keys()``, ``metadata``, ``f[name]`` (built on first access).

    The file is opened once: the header is read from that descriptor and the blobs are mapped
    from it, so a file replaced (``os.replace``) while it is open is never mixed with its
    successor. Tensors are views of a copy-on-write mapping of the file: nothing is read until
    used, and nothing written to them reaches the file. Each access checks that the file still
    has its size: a file truncated under an open container raises :class:`FormatError` instead
    of killing the process (SIGBUS) when a tensor is built. Arrays handed out earlier stay views
    of the mapping; for files that other processes may truncate, pass ``mmap=False`` to read
    each tensor's bytes into memory instead.

    ``max_bytes`` is the decode budget (``io.tensors.check_budget``): a matrix that would decode
    to more is refused when built.
    """

    def __init__(self, path: PathLike, verify: bool = True, max_bytes: Budget = "auto",
                 mmap: bool = True):
        self.path = Path(path)
        self.verify = verify
        self.max_bytes = max_bytes
        self._fh = open_regular(self.path, "container")
        try:
            self._open(mmap)
        except BaseException:
            self._fh.close()
            raise

    def _open(self, mmap: bool) -> None:
        fh = self._fh
        size = os.fstat(fh.fileno()).st_size
        self._size = size
        pre = fh.read(PREAMBLE.size)
        if len(pre) < PREAMBLE.size:
            raise FormatError(f"{self.path}: {size} bytes is too short for a container")
        magic, version, check, hlen = PREAMBLE.unpack(pre)
        if magic != MAGIC:
            raise FormatError(f"{self.path}: not a sparsecodec container (bad magic)")
        if version not in READABLE or (version == 1 and check != 0):
            raise FormatError(f"{self.path}: unsupported version {version} "
                              f"(this reader reads versions {READABLE})")
        if hlen > min(MAX_HEADER, size - PREAMBLE.size):
            raise FormatError(f"{self.path}: header length {hlen} exceeds the file "
                              f"({size} bytes) or the {MAX_HEADER}-byte limit")
        self._data_start = _align(PREAMBLE.size + hlen)
        raw = fh.read(min(self._data_start, size) - PREAMBLE.size)
        if version >= 2 and zlib.crc32(raw[:hlen]) != check:
            raise FormatError(f"{self.path}: header checksum mismatch (the header is damaged)")
        if raw[hlen:].count(0) != len(raw) - hlen:
            raise FormatError(f"{self.path}: the padding after the header is not zero")
        try:
            header = parse_json(raw[:hlen], "the header")
        except FormatError as exc:
            raise FormatError(f"{self.path}: {exc}") from None
        self._entries, self.metadata, self._gaps = self._check_header(header, size)
        if mmap and size > self._data_start:
            self._map: np.ndarray = np.memmap(fh, mode="c")
        else:
            self._map = np.zeros(0, np.uint8)
        self._mapped = mmap
        self._cache: dict[str, Any] = {}

    def _check_header(self, h: Any, size: int
                      ) -> tuple[dict[str, Any], dict[str, str], dict[tuple[str, str], int]]:
        where = str(self.path)
        if not isinstance(h, dict) or set(h) != {"data_length", "metadata", "tensors"}:
            raise FormatError(f"{where}: the header must hold exactly data_length, metadata "
                              f"and tensors")
        dlen = h["data_length"]
        if not _is_int(dlen) or self._data_start + dlen != size:
            raise FormatError(f"{where}: data_length {dlen!r} does not end at the file's "
                              f"{size} bytes")
        meta = h["metadata"]
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise FormatError(f"{where}: metadata must map strings to strings")
        tensors = h["tensors"]
        if not isinstance(tensors, dict):
            raise FormatError(f"{where}: tensors must be an object")
        spans = []
        for name, t in tensors.items():
            at = f"{where}: tensor {name!r}"
            if not 0 < len(name) <= MAX_NAME:
                raise FormatError(f"{at}: names are 1..{MAX_NAME} characters")
            if not isinstance(t, dict) or set(t) != {"format", "shape", "dtype", "meta",
                                                     "components"}:
                raise FormatError(f"{at}: needs exactly format, shape, dtype, meta, components")
            if not isinstance(t["format"], str) or not isinstance(t["dtype"], str):
                raise FormatError(f"{at}: format and dtype must be strings")
            check_format_name(at, t["format"])
            check_shape(f"{at}: shape", t["shape"])
            if not isinstance(t["meta"], dict) or not isinstance(t["components"], dict):
                raise FormatError(f"{at}: meta and components must be objects")
            for cname, c in t["components"].items():
                cat = f"{at}: component {cname!r}"
                if not isinstance(c, dict) or set(c) != {"dtype", "shape", "offset", "length",
                                                         "crc32"}:
                    raise FormatError(f"{cat}: needs exactly dtype, shape, offset, length, crc32")
                if not isinstance(c["dtype"], str) or c["dtype"] not in DTYPES:
                    raise FormatError(f"{cat}: dtype {c['dtype']!r} is not allowed")
                shp = c["shape"]
                check_shape(f"{cat}: shape", shp)
                off, ln, crc = c["offset"], c["length"], c["crc32"]
                if not (_is_int(off) and _is_int(ln) and _is_int(crc)) or off < 0 or ln < 0:
                    raise FormatError(f"{cat}: offset, length and crc32 must be integers >= 0")
                if ln != math.prod(shp) * np.dtype(c["dtype"]).itemsize:
                    raise FormatError(f"{cat}: length {ln} does not match shape {shp} of "
                                      f"{c['dtype']}")
                if off % ALIGN or off + ln > dlen:
                    raise FormatError(f"{cat}: blob [{off}, {off + ln}) is misaligned or past "
                                      f"the {dlen}-byte data section")
                spans.append((off, off + ln, name, cname))
        # the blobs tile the data section: each starts at the first aligned offset after the
        # previous one's end, the last ends the section, and nothing else is there
        spans.sort()
        gaps: dict[tuple[str, str], int] = {}
        end, last = 0, ("", "")
        for off, stop, name, cname in spans:
            if off < end:
                raise FormatError(f"{where}: blobs of {last[0]!r}/{last[1]!r} and "
                                  f"{name!r}/{cname!r} overlap")
            if off != _align(end):
                raise FormatError(f"{where}: tensor {name!r}: component {cname!r}: a gap of "
                                  f"{off - end} bytes precedes its blob (blobs must tile the "
                                  f"data section)")
            gaps[(name, cname)] = end
            end, last = stop, (name, cname)
        if end != dlen:
            raise FormatError(f"{where}: {dlen - end} bytes follow the last blob in the data "
                              f"section")
        return tensors, meta, gaps

    # ---- the Mapping protocol
    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            if name not in self._entries:
                raise KeyError(name)
            self._cache[name] = self._build(name, self._entries[name])
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def info(self, name: str) -> TensorInfo:
        """Format, shape, dtype and stored bytes of a tensor, from the header alone (nothing is
        read or built: ``sparsecodec info``). A matrix over the decode budget is refused as
        ``f[name]`` would refuse it."""
        t = self._entries[name]
        stored = sum(c["length"] for c in t["components"].values())
        check_budget(f"{self.path}: tensor {name!r}", t["format"], t["shape"], t["dtype"],
                     stored, self.max_bytes)
        return TensorInfo(t["format"], tuple(t["shape"]), t["dtype"], stored)

    def _bytes(self, start: int, stop: int) -> np.ndarray:
        if self._mapped:
            return self._map[start:stop]
        out = np.empty(stop - start, np.uint8)
        read_at(self._fh, start, out, str(self.path))
        return out

    def _component(self, at: str, key: tuple[str, str], c: dict[str, Any]) -> np.ndarray:
        dtype = np.dtype(c["dtype"])
        start = self._data_start + c["offset"]
        blob = self._bytes(start, start + c["length"])
        if self.verify:
            if zlib.crc32(blob.data) != c["crc32"]:
                raise FormatError(f"{at}: checksum mismatch")
            gap = self._bytes(self._data_start + self._gaps[key], start)
            if gap.any():
                raise FormatError(f"{at}: the padding before its blob is not zero")
        return blob.view(dtype).reshape(c["shape"]) if c["length"] else np.zeros(c["shape"],
                                                                                  dtype)

    def _build(self, name: str, t: dict[str, Any]) -> Any:
        at = f"{self.path}: tensor {name!r}"
        check_unchanged(self._fh, self._size, at)
        stored = sum(c["length"] for c in t["components"].values())
        check_budget(at, t["format"], t["shape"], t["dtype"], stored, self.max_bytes)
        comps = {cn: self._component(f"{at}: component {cn!r}", (name, cn), c)
                 for cn, c in t["components"].items()}
        return build(at, t["format"], t["shape"], t["dtype"], t["meta"], comps)

    def close(self) -> None:
        self._cache.clear()
        self._map = np.zeros(0, np.uint8)
        self._fh.close()

    def __enter__(self) -> ContainerFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
