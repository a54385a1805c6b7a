"""HDF5 backend (h5py): the same tensors as the container, for tools that speak HDF5.

Layout: the root carries attributes ``sparsecodec`` (= 1) and ``metadata`` (a JSON object of
strings). Each tensor is a group ``/tensors/<index>`` (tensor names may hold ``/``, so the name
is an attribute, ``name``) with attributes ``format``, ``shape``, ``dtype`` and ``meta`` (JSON),
and one dataset per component, stored contiguously without filters. Loading maps those
datasets straight from the file (zero-copy) when HDF5 reports a file offset for them, and reads
them otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, SparseCodecError
from ..formats.base import Encoded
from .tensors import DTYPES, build, check_name, describe, storable

VERSION = 1
EXTENSIONS = (".h5", ".hdf5", ".hdf")


def _h5py():
    import h5py  # a core dependency, imported only when HDF5 is used

    return h5py


def save_hdf5(path: str | os.PathLike, tensors: Mapping[str, Encoded | np.ndarray],
              metadata: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` to an HDF5 file (written under a temporary name, then renamed)."""
    h5py = _h5py()
    path = Path(path)
    metadata = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SparseCodecError("metadata must map strings to strings")
    partial = path.with_name(f".{path.name}.partial")
    try:
        with h5py.File(partial, "w") as f:
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
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


class HDF5File(Mapping[str, Any]):
    """An open HDF5 file of tensors, with the interface of :class:`ContainerFile`."""

    def __init__(self, path: str | os.PathLike, verify: bool = True):
        h5py = _h5py()
        self.path = Path(path)
        self.verify = verify  # HDF5 has no per-dataset checksum here; kept for one interface
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise FormatError(f"{self.path}: not a readable HDF5 file: {exc}") from None
        f = self._file
        if f.attrs.get("sparsecodec") != VERSION or "tensors" not in f:
            raise FormatError(f"{self.path}: not a sparsecodec HDF5 file (version "
                              f"{f.attrs.get('sparsecodec')!r})")
        try:
            meta = json.loads(f.attrs.get("metadata", "{}"))
        except (TypeError, ValueError) as exc:
            raise FormatError(f"{self.path}: metadata is not JSON: {exc}") from None
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise FormatError(f"{self.path}: metadata must map strings to strings")
        self.metadata: dict[str, str] = meta
        self._groups: dict[str, Any] = {}
        keys = list(f["tensors"])
        if not all(k.isdigit() for k in keys):
            raise FormatError(f"{self.path}: tensor groups must be named 0, 1, 2, ...")
        for key in sorted(keys, key=int):  # the order the tensors were saved in
            g = f["tensors"][key]
            name = g.attrs.get("name")
            if not isinstance(name, str) or not name or name in self._groups:
                raise FormatError(f"{self.path}: group {key!r} has a missing or repeated name")
            self._groups[name] = g
        self._size = self.path.stat().st_size
        self._cache: dict[str, Any] = {}

    def _component(self, at: str, ds: Any) -> np.ndarray:
        h5py = _h5py()
        if not isinstance(ds, h5py.Dataset):
            raise FormatError(f"{at}: is not a dataset")
        dtype = ds.dtype
        if dtype.str not in DTYPES:  # the allow-list spells byte order out: big-endian fails
            raise FormatError(f"{at}: dtype {dtype} is not allowed")
        offset = ds.id.get_offset()
        nbytes = int(np.prod(ds.shape, dtype=np.int64)) * dtype.itemsize
        if offset is not None and nbytes and offset + nbytes <= self._size:
            return np.memmap(self.path, dtype=dtype, mode="c", offset=offset, shape=ds.shape)
        return ds[()] if ds.shape != () else np.asarray(ds[()])

    def __getitem__(self, name: str) -> Any:
        if name not in self._cache:
            g = self._groups[name]
            at = f"{self.path}: tensor {name!r}"
            shape = g.attrs.get("shape")
            try:
                meta = json.loads(g.attrs.get("meta", "{}"))
                shape = [int(s) for s in np.asarray(shape).ravel()]
            except (TypeError, ValueError) as exc:
                raise FormatError(f"{at}: bad attributes: {exc}") from None
            comps = {cn: self._component(f"{at}: component {cn!r}", g[cn]) for cn in g}
            self._cache[name] = build(at, g.attrs.get("format"), shape, g.attrs.get("dtype"),
                                      meta, comps)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def close(self) -> None:
        self._cache.clear()
        self._file.close()

    def __enter__(self) -> HDF5File:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
