"""``open_source``: the tensors of a model file (or of a mapping of arrays) read one at a time.
The sources themselves live with their framework's reader and writer in
``sparsecodec.adapters``; they are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .adapters import source as _framework_source
from .adapters.keras_h5 import HDF5Source
from .adapters.npz import NpzSource
from .adapters.safetensors_file import SafetensorsIndexSource, SafetensorsSource
from .adapters.source import ArraySource, TensorSource
from .io.tensors import Budget


def open_source(x: Any, max_bytes: Budget = "auto") -> TensorSource:
    """A source for a framework file (its kind decided by ``io.filetypes``) or a mapping of
    arrays. ``max_bytes``: the decode budget of compressed inputs (``.npz`` members, chunked
    HDF5 datasets)."""
    if isinstance(x, TensorSource):
        return x
    if isinstance(x, Mapping):
        return ArraySource(x)
    return _framework_source(x, max_bytes)


__all__ = ["ArraySource", "HDF5Source", "NpzSource", "SafetensorsIndexSource",
           "SafetensorsSource", "TensorSource", "open_source"]
