"""HDF5 backend (h5py): the same tensors as the container, for tools that speak HDF5; and the
rules every HDF5 file the library reads is held to (Keras files and HDF5 tensor sources too).

Layout: the root carries attributes ``sparsecodec`` (= 1) and ``metadata`` (a JSON object of
strings). Each tensor is a group ``/tensors/<index>`` (tensor names may hold ``/``, so the name
is an attribute, ``name``) with attributes ``format``, ``shape``, ``dtype`` and ``meta`` (JSON),
and one dataset per component, stored contiguously without filters.

What is read (a hostile file cannot point the reader anywhere else):
- only objects reached through hard links: soft, external and dangling links are refused;
- only datasets whose bytes are inside the file itself: external raw storage
  (``external=``) and virtual datasets are refused, and so is a dataset whose storage was never
  written (HDF5 would return its fill value, any number of times over);
- in sparsecodec's own files, only contiguous, unfiltered datasets, mapped from the very
  descriptor h5py reads (one open: a file replaced meanwhile is never mixed in);
- in other files (Keras weights, ``pack`` inputs), also compact and chunked ones with the
  common filters (gzip, shuffle, lzf, fletcher32), within the decode budget: a dataset may
  expand to at most ``max(256 MiB, 1024 x its stored bytes)`` unless the caller raises it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FormatError, SparseCodecError, converted
from .files import atomic_output, check_unchanged, open_regular, read_at
from .tensors import (
    DTYPES,
    Budget,
    TensorInfo,
    budget_limit,
    build,
    check_budget,
    check_format_name,
    check_name,
    check_shape,
    describe,
    parse_json,
    storable,
)

if TYPE_CHECKING:
    from ..formats.base import Encoded

VERSION = 1
FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}  # allowed in foreign files


def load_h5py():
    import h5py  # a core dependency, imported only when HDF5 is used

    return h5py


# what h5py raises from any structural read of a damaged file
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)


def h5_errors(at: str) -> Any:
    """A context in which h5py's failures on a damaged file are one :class:`FormatError`
    naming ``at``."""
    return converted(f"{at}: damaged or unreadable HDF5 structure", H5_ERRORS)


def save_hdf5(path: str | os.PathLike, tensors: Mapping[str, Encoded | np.ndarray],
              metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` to an HDF5 file (through an exclusive temporary, then renamed)."""
    h5py = load_h5py()
    path = Path(path)
    metadata = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SparseCodecError("metadata must map strings to strings")
    with atomic_output(path) as fh, h5py.File(fh, "w") as f:
        f.attrs["sparsecodec"] = VERSION
        f.attrs["metadata"] = json.dumps(metadata)
        root = f.create_group("tensors")
        seen = set()
        for i, (name, tensor) in enumerate(tensors.items()):
            check_name(name)
            if name in seen:
                raise SparseCodecError(f"tensor {name!r} is added twice")
            seen.add(name)
            entry, comps = describe(tensor)
            g = root.create_group(str(i))
            g.attrs["name"] = name
            g.attrs["format"] = entry["format"]
            g.attrs["shape"] = np.asarray(entry["shape"], np.int64)
            g.attrs["dtype"] = entry["dtype"]
            g.attrs["meta"] = json.dumps(entry["meta"])
            for cname, arr in comps.items():
                a, _ = storable(arr)
                # contiguous and unfiltered: the loader can map it in place
                g.create_dataset(cname, data=a)


# --------------------------------------------------------------------------- the rules


def member(group: Any, name: str, at: str) -> Any:
    """``group[name]`` if it is reached through a hard link; :class:`FormatError` for a soft,
    external or dangling link (which h5py would follow, into another file or nowhere)."""
    h5py = load_h5py()
    with h5_errors(at):
        link = group.get(name, getlink=True)
        if link is None:
            raise FormatError(f"{at}: is missing")
        if not isinstance(link, h5py.HardLink):
            raise FormatError(f"{at}: is a {type(link).__name__}; only objects stored in the "
                              "file itself are read")
        return group[name]


def check_dataset(ds: Any, at: str, strict: bool, max_bytes: Budget = "auto") -> int | None:
    """Refuse a dataset whose bytes are not in the file (external storage, virtual, never
    written), or, with ``strict`` (sparsecodec's own files), anything but contiguous and
    unfiltered; otherwise filters outside ``FILTERS`` and expansion past the decode budget.
    Returns the file offset of a contiguous dataset's bytes (None when it has none)."""
    h5py = load_h5py()
    if not isinstance(ds, h5py.Dataset):
        raise FormatError(f"{at}: is not a dataset")
    with h5_errors(at):
        plist = ds.id.get_create_plist()
        layout = plist.get_layout()
        external = plist.get_external_count()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        stored = int(ds.id.get_storage_size())
        offset = ds.id.get_offset() if layout == h5py.h5d.CONTIGUOUS else None
        shape = ds.shape
    if external:
        raise FormatError(f"{at}: uses external raw storage (its bytes would come from "
                          "another file); refused")
    if layout == h5py.h5d.VIRTUAL:
        raise FormatError(f"{at}: is a virtual dataset (its bytes come from other datasets "
                          "or files); refused")
    if shape is None:
        raise FormatError(f"{at}: has no shape (an empty dataspace)")
    check_shape(f"{at}: shape", list(shape))
    nbytes = int(np.prod(shape, dtype=object)) * ds.dtype.itemsize
    if strict and (layout != h5py.h5d.CONTIGUOUS or filters):
        raise FormatError(f"{at}: must be stored contiguously without filters")
    if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT, h5py.h5d.CHUNKED):
        raise FormatError(f"{at}: unknown storage layout {layout}")
    unknown = [f for f in filters if f not in FILTERS]
    if unknown:
        raise FormatError(f"{at}: uses HDF5 filter(s) {unknown}; only "
                          f"{sorted(FILTERS.values())} are read")
    if layout == h5py.h5d.CONTIGUOUS and nbytes and (offset is None or stored != nbytes):
        raise FormatError(f"{at}: its {nbytes:,} bytes were never written to the file (HDF5 "
                          "would return the fill value)")
    limit = budget_limit(stored, max_bytes)
    if layout == h5py.h5d.CHUNKED and limit is not None and nbytes > limit:
        raise FormatError(f"{at}: {stored:,} stored bytes would expand to {nbytes:,}, over the "
                          f"decode budget of {limit:,} bytes")
    return offset


def numeric_datasets(f: Any) -> list[str]:
    """Paths of the numeric (float, int, uint, bool), non-scalar datasets of an open file,
    reached from the root through hard links only."""
    h5py = load_h5py()
    names: list[str] = []

    def walk(group: Any, prefix: str, depth: int) -> None:
        if depth > 64:
            raise FormatError(f"{prefix}: groups nested more than 64 deep")
        for key in group:
            path = f"{prefix}{key}"
            link = group.get(key, getlink=True)
            if not isinstance(link, h5py.HardLink):
                continue  # soft and external links are never followed
            obj = group[key]
            if isinstance(obj, h5py.Group):
                walk(obj, path + "/", depth + 1)
            elif (isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiub"
                  and obj.shape not in ((), None)):
                names.append(path)

    with h5_errors(str(f.filename)):
        walk(f, "", 0)
    return names


def read_dataset(f: Any, name: str, at: str, max_bytes: Budget = "auto") -> np.ndarray:
    """A dataset of a foreign HDF5 file, read under the rules above."""
    with h5_errors(f"{at}: dataset {name!r}"):
        group = f
        parts = name.split("/")
        for i, part in enumerate(parts):
            group = member(group, part, f"{at}: {'/'.join(parts[:i + 1])}")
        check_dataset(group, f"{at}: dataset {name!r}", strict=False, max_bytes=max_bytes)
        return group[()]


def open_hdf5(path: str | os.PathLike, mode: str = "r") -> tuple[Any, Any]:
    """(file object, h5py file) for a regular file opened once; :class:`FormatError` if it is
    not HDF5."""
    h5py = load_h5py()
    fh = open_regular(path, "HDF5 file")
    try:
        with converted(f"{path}: not a readable HDF5 file", H5_ERRORS):
            return fh, h5py.File(fh, mode)
    except FormatError:
        fh.close()
        raise


# --------------------------------------------------------------------------- reading ours


def _attr(g: Any, key: str, at: str) -> Any:
    with h5_errors(f"{at}: attribute {key!r}"):
        return g.attrs.get(key)


def _str_attr(g: Any, key: str, at: str) -> str:
    v = _attr(g, key, at)
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if not isinstance(v, str):
        raise FormatError(f"{at}: attribute {key!r} must be a string, found "
                          f"{type(v).__name__}")
    return v


class HDF5File(Mapping[str, Any]):
    """An open HDF5 file of tensors, with the interface of :class:`ContainerFile`."""

    def __init__(self, path: str | os.PathLike, verify: bool = True,
                 max_bytes: Budget = "auto", mmap: bool = True):
        h5py = load_h5py()
        self.path = Path(path)
        self.verify = verify  # HDF5 has no per-dataset checksum here; kept for one interface
        self.max_bytes = max_bytes
        self._mmap = mmap
        self._cache: dict[str, Any] = {}
        self._fh, self._file = open_hdf5(self.path)
        try:
            with h5_errors(str(self.path)):
                self._groups = self._index(h5py)
        except BaseException:
            self.close()
            raise
        self._size = os.fstat(self._fh.fileno()).st_size

    def _index(self, h5py: Any) -> dict[str, Any]:
        f, at = self._file, str(self.path)
        version = _attr(f, "sparsecodec", at)
        if (not isinstance(version, (int, np.integer)) or isinstance(version, (bool, np.bool_))
                or version != VERSION or "tensors" not in f):
            raise FormatError(f"{at}: not a sparsecodec HDF5 file (version "
                              f"{str(version)[:40]})")
        meta = parse_json(_str_attr(f, "metadata", at), f"{at}: metadata")
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise FormatError(f"{at}: metadata must map strings to strings")
        self.metadata: dict[str, str] = meta
        tensors = member(f, "tensors", f"{at}: /tensors")
        if not isinstance(tensors, h5py.Group):
            raise FormatError(f"{at}: /tensors is not a group")
        keys = list(tensors)
        if not all(k.isascii() and k.isdigit() for k in keys):
            raise FormatError(f"{at}: tensor groups must be named 0, 1, 2, ...")
        groups: dict[str, Any] = {}
        for key in sorted(keys, key=int):  # the order the tensors were saved in
            g = member(tensors, key, f"{at}: group {key}")
            if not isinstance(g, h5py.Group):
                raise FormatError(f"{at}: /tensors/{key} is not a group")
            name = _str_attr(g, "name", f"{at}: group {key}")
            if not 0 < len(name) or name in groups:
                raise FormatError(f"{at}: group {key!r} has an empty or repeated name")
            groups[name] = g
        return groups

    def _component(self, at: str, ds: Any) -> np.ndarray:
        offset = check_dataset(ds, at, strict=True)
        dtype = ds.dtype
        if dtype.str not in DTYPES:  # the allow-list spells byte order out: big-endian fails
            raise FormatError(f"{at}: dtype {dtype} is not allowed")
        shape = tuple(ds.shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if not nbytes:
            return np.zeros(shape, dtype)
        assert offset is not None  # check_dataset refuses contiguous bytes without an offset
        if offset + nbytes > self._size:
            raise FormatError(f"{at}: its bytes [{offset}, {offset + nbytes}) are past the "
                              f"end of the {self._size}-byte file")
        if self._mmap:
            return np.memmap(self._fh, dtype=dtype, mode="c", offset=offset, shape=shape)
        out = np.empty(shape, dtype)
        read_at(self._fh, offset, out, at)
        return out

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            g = self._groups[name]
            with h5_errors(f"{self.path}: tensor {name!r}"):
                self._cache[name] = self._read(name, g)
        return self._cache[name]

    def _read(self, name: str, g: Any) -> Any:
        """The tensor of group ``g``, validated (raises :class:`FormatError`)."""
        at = f"{self.path}: tensor {name!r}"
        check_unchanged(self._fh, self._size, at)
        fmt = _str_attr(g, "format", at)
        dtype = _str_attr(g, "dtype", at)
        meta = parse_json(_str_attr(g, "meta", at), f"{at}: meta")
        raw_shape = _attr(g, "shape", at)
        arr = np.asarray(raw_shape)
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise FormatError(f"{at}: attribute 'shape' must be a 1-D integer array")
        shape = [int(s) for s in arr]
        check_shape(f"{at}: shape", shape)
        names = list(g)  # (h5py's failures are FormatErrors here: __getitem__'s h5_errors)
        found = {cn: member(g, cn, f"{at}: component {cn!r}") for cn in names}
        dataset = load_h5py().Dataset
        stored = sum(int(ds.id.get_storage_size()) for ds in found.values()
                     if isinstance(ds, dataset))
        check_budget(at, fmt, shape, dtype, stored, self.max_bytes)
        comps = {cn: self._component(f"{at}: component {cn!r}", ds) for cn, ds in found.items()}
        return build(at, fmt, shape, dtype, meta, comps)

    def info(self, name: str) -> TensorInfo:
        """Format, shape, dtype and stored bytes of a tensor, from its group's attributes and
        dataset shapes (no data is read); refused over the decode budget, as ``f[name]``."""
        g, at = self._groups[name], f"{self.path}: tensor {name!r}"
        with h5_errors(at):
            fmt, dtype = _str_attr(g, "format", at), _str_attr(g, "dtype", at)
            check_format_name(at, fmt)
            shape = [int(s) for s in np.asarray(_attr(g, "shape", at)).ravel()]
            check_shape(f"{at}: shape", shape)
            dataset = load_h5py().Dataset
            stored = sum(int(np.prod(ds.shape, dtype=np.int64)) * ds.dtype.itemsize
                         for cn in g if isinstance(ds := member(g, cn, at), dataset))
            check_budget(at, fmt, shape, dtype, stored, self.max_bytes)
        return TensorInfo(fmt, tuple(shape), dtype[:40], stored)

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def close(self) -> None:
        self._cache.clear()
        try:
            self._file.close()
        finally:
            self._fh.close()

    def __enter__(self) -> HDF5File:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
