"""Storage backends: the container file (default) and HDF5 (``.h5``/``.hdf5``/``.hdf``).

``save``, ``load`` and ``open_file`` pick the backend from ``backend=`` or the file extension.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SparseCodecError
from .container import ContainerFile, ContainerWriter, save_container
from .filetypes import is_hdf5_name
from .hdf5 import HDF5File, save_hdf5
from .sharded import ShardedFile, index_for
from .tensors import Budget, TensorInfo

if TYPE_CHECKING:
    from ..formats.base import Encoded

BACKENDS = ("container", "hdf5")


def _backend(path: str | os.PathLike, backend: str | None) -> str:
    if backend is None:
        return "hdf5" if is_hdf5_name(path) else "container"
    if backend not in BACKENDS:
        raise SparseCodecError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    return backend


def save(path: str | os.PathLike, tensors: Mapping[str, Encoded | np.ndarray],
         metadata: Mapping[str, str] | None = None, backend: str | None = None) -> None:
    """Write ``tensors`` (name -> encoded matrix or array) and string ``metadata`` to ``path``.

    The backend is ``backend`` or follows the extension: HDF5 for .h5/.hdf5/.hdf, else the
    container format (``formats/container.md``).
    """
    if _backend(path, backend) == "hdf5":
        save_hdf5(path, tensors, metadata)
    else:
        save_container(path, tensors, metadata)


def open_file(path: str | os.PathLike, verify: bool = True, backend: str | None = None, *,
              max_bytes: Budget = "auto", mmap: bool = True
              ) -> ContainerFile | HDF5File | ShardedFile:
    """Open a file of tensors lazily: ``f.keys()``, ``f.metadata``, ``f[name]``. A sharded pack
    opens through its index: ``model.spc.index.json``, or ``model.spc`` when only the index
    and its shards exist.

    ``max_bytes`` is the decode budget of each matrix: ``"auto"`` (default) allows
    ``max(256 MiB, 1024 x its stored bytes)``, an int that many bytes, None no limit; a matrix
    over it raises :class:`FormatError` when accessed. ``mmap=False`` reads each tensor into
    memory instead of mapping the file (for files that another process may truncate: a mapped
    array whose file shrinks faults when touched)."""
    index = index_for(path) if backend is None else None
    if index is not None:
        return ShardedFile(index, verify, max_bytes=max_bytes, mmap=mmap)
    if _backend(path, backend) == "hdf5":
        return HDF5File(path, verify, max_bytes=max_bytes, mmap=mmap)
    return ContainerFile(path, verify, max_bytes=max_bytes, mmap=mmap)


def load(path: str | os.PathLike, verify: bool = True, backend: str | None = None, *,
         max_bytes: Budget = "auto", mmap: bool = True) -> dict[str, Any]:
    """Every tensor of a file: name -> encoded matrix, or array for plain arrays (mapped from
    the file, not copied, wherever the backend allows). ``max_bytes`` and ``mmap`` as in
    :func:`open_file`."""
    with open_file(path, verify, backend, max_bytes=max_bytes, mmap=mmap) as f:
        return {name: f[name] for name in f}


__all__ = ["BACKENDS", "ContainerFile", "ContainerWriter", "HDF5File", "ShardedFile",
           "TensorInfo", "load", "open_file", "save"]
