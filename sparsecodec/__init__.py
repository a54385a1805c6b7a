"""sparsecodec: lossless compact formats for pruned and quantized weight matrices.

>>> import numpy as np, sparsecodec as sc
>>> W = np.zeros((4, 3), np.float32); W[1, 2] = 0.5
>>> enc = sc.encode(W, format="sham")
>>> bool((enc.decode() == W).all()), (np.ones(4) @ enc).tolist()
(True, [0.0, 0.0, 0.5])
"""

from . import bounds, quantize  # sc.bounds.report, sc.quantize.kmeans
from . import formats as _formats  # noqa: F401  (registers every format)
from .api import encode, formats, sizes, to_compute
from .errors import (
    DTypeError,
    EncodeError,
    FormatError,
    QuantizeError,
    ShapeError,
    SparseCodecError,
)
from .formats.base import Encoded
from .io import ContainerFile, ContainerWriter, HDF5File, load, save
from .io import open_file as open  # noqa: A001  (sc.open, like safetensors.safe_open)

__version__ = "0.1.0"

__all__ = [
    "bounds",
    "quantize",
    "ContainerFile",
    "ContainerWriter",
    "DTypeError",
    "HDF5File",
    "EncodeError",
    "Encoded",
    "FormatError",
    "QuantizeError",
    "ShapeError",
    "SparseCodecError",
    "encode",
    "formats",
    "load",
    "open",
    "save",
    "sizes",
    "to_compute",
]
