"""sparsecodec: lossless compact formats for pruned and quantized weight matrices.

>>> import numpy as np, sparsecodec as sc
>>> W = np.zeros((4, 3), np.float32); W[1, 2] = 0.5
>>> enc = sc.encode(W, format="sham")
>>> bool((enc.decode() == W).all()), (np.ones(4) @ enc).tolist()
(True, [0.0, 0.0, 0.5])
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from .errors import (
    DTypeError,
    EncodeError,
    EvaluationError,
    FormatError,
    OptionError,
    PackError,
    QuantizeError,
    ShapeError,
    SparseCodecError,
    UnknownFormatError,
)

__version__ = "0.1.0"

# The rest of the API loads on first use: the formats import numba (about half a second), which
# `sparsecodec info` and `--help` never need. The first access to any name below imports them
# all at once, in the order an eager import would.
_LAZY = {
    "bounds": ".bounds", "quantize": ".quantize",
    "encode": ".api", "formats": ".api", "sizes": ".api", "to_compute": ".api",
    "compress": ".targets",
    "Encoded": ".formats.base",
    "ContainerFile": ".io", "ContainerWriter": ".io", "HDF5File": ".io", "load": ".io",
    "save": ".io", "open": ".io",
}

if TYPE_CHECKING:
    from . import bounds, quantize
    from .api import encode, formats, sizes, to_compute
    from .formats.base import Encoded
    from .io import ContainerFile, ContainerWriter, HDF5File, load, save
    from .io import open_file as open  # noqa: A001
    from .targets import compress


def _load() -> None:
    import importlib

    g = globals()
    for module in (".bounds", ".quantize", ".formats"):  # .formats registers every format
        importlib.import_module(module, __name__)
    for name, module in _LAZY.items():
        m = importlib.import_module(module, __name__)
        g[name] = m if module.endswith(name) else getattr(m, "open_file" if name == "open"
                                                          else name)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        _load()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``sc.formats`` is the function listing the formats, as it always was; importing the
    subpackage ``sparsecodec.formats`` later must not replace it (the import system sets a
    package's attribute to each submodule it loads)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "formats" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "bounds",
    "quantize",
    "ContainerFile",
    "ContainerWriter",
    "DTypeError",
    "HDF5File",
    "EncodeError",
    "EvaluationError",
    "Encoded",
    "FormatError",
    "OptionError",
    "PackError",
    "QuantizeError",
    "ShapeError",
    "SparseCodecError",
    "UnknownFormatError",
    "compress",
    "encode",
    "formats",
    "load",
    "open",
    "save",
    "sizes",
    "to_compute",
]
