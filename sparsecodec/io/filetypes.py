"""Which kind of file a path names: the one place that decides, for every command and API.

Framework files (read and written by ``sparsecodec.adapters``, one module per framework):

==================  ==========================================  =========================
kind                names                                       module
==================  ==========================================  =========================
``npz``             ``.npz``                                    ``adapters/npz.py``
``safetensors``     ``.safetensors``; ``*.index.json`` (shards)  ``adapters/safetensors_file.py``
``onnx``            ``.onnx``                                   ``adapters/onnx_file.py``
``keras``           ``.h5``, ``.hdf5`` not written by us          ``adapters/keras_h5.py``
``torch``           ``.pt``, ``.pth``                           ``adapters/torch_file.py``
==================  ==========================================  =========================

Packed files (``sparsecodec.io``): ``container`` (``.spc``, and ``*.spc.index.json`` for a
sharded one) and ``hdf5`` (``.hdf``, and ``.h5``/``.hdf5`` files written by sparsecodec: the
only kind told apart by content, an attribute at the file's root).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FormatError

CONTAINER, HDF5 = "container", "hdf5"
FRAMEWORK_EXTENSIONS = {
    "npz": (".npz",),
    "safetensors": (".safetensors", ".index.json"),
    "onnx": (".onnx",),
    "keras": (".h5", ".hdf5"),
    "torch": (".pt", ".pth"),
}
HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf")
CONTAINER_EXTENSIONS = (".spc", ".spc.index.json")


def _ends(path: str | os.PathLike, suffixes: tuple[str, ...]) -> bool:
    return Path(path).name.lower().endswith(suffixes)


def is_hdf5_name(path: str | os.PathLike) -> bool:
    """A name the HDF5 backend writes (``.h5``, ``.hdf5``, ``.hdf``); others are containers."""
    return _ends(path, HDF5_EXTENSIONS)


def is_shard_index(path: str | os.PathLike) -> bool:
    """A sharded checkpoint's ``*.index.json`` (safetensors; ``*.spc.index.json`` for ours)."""
    return _ends(path, (".index.json",))


def framework_kind(path: str | os.PathLike) -> str | None:
    """The framework a file name belongs to by its extension, or None (a packed file or an
    unknown name). A sharded container's ``*.spc.index.json`` is not a framework file."""
    if _ends(path, (".spc.index.json",)):
        return None
    for kind, exts in FRAMEWORK_EXTENSIONS.items():
        if _ends(path, exts):
            return kind
    return None


def written_by_sparsecodec(path: str | os.PathLike) -> bool:
    """True for an HDF5 file that sparsecodec's own backend wrote (its root attribute)."""
    from .hdf5 import h5_errors, open_hdf5

    fh, f = open_hdf5(path)
    with fh, f, h5_errors(str(path)):
        return "sparsecodec" in f.attrs


def kind_of(path: str | os.PathLike) -> str:
    """The kind of an existing input file: a framework kind, ``container`` or ``hdf5``.
    Raises FileNotFoundError for a missing file and :class:`FormatError` for a name no kind
    has, listing those known."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no such file: {path}")
    if _ends(path, CONTAINER_EXTENSIONS):
        return CONTAINER
    if _ends(path, (".hdf",)) or (is_hdf5_name(path) and written_by_sparsecodec(path)):
        return HDF5
    kind = framework_kind(path)
    if kind is None:
        raise FormatError(f"{path}: unknown extension {Path(path).suffix or '(none)'!r}; "
                          f"known: {', '.join(known_extensions())}")
    return kind


def known_extensions(kinds: tuple[str, ...] | None = None) -> list[str]:
    """The extensions of these framework kinds (all, and the packed ones, by default)."""
    if kinds is None:
        return sorted({*CONTAINER_EXTENSIONS, *HDF5_EXTENSIONS,
                       *(e for exts in FRAMEWORK_EXTENSIONS.values() for e in exts)})
    return [e for k in kinds for e in FRAMEWORK_EXTENSIONS[k]]
