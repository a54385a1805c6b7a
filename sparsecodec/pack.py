"""Packing a model's tensors into one sparsecodec file and back.

``pack`` turns every floating-point weight tensor (two or more dimensions, optionally only
those whose name matches a regex) into our (inputs, outputs) matrix, prunes, quantizes and
encodes it, and stores everything else (biases, integer buffers) as plain arrays. How each
tensor was turned into a matrix is recorded in the file's metadata, so ``unpack`` restores
every tensor in its original shape and layout.

Layouts (our matrices are always W of shape (inputs, outputs), y = x @ W):

- ``as-is``: 2-D tensors are taken as (inputs, outputs) already (Keras Dense, NumPy code);
  tensors of more dimensions are flattened to (prod(shape[:-1]), shape[-1]).
- ``torch``: a 2-D weight is (outputs, inputs) (``nn.Linear``) and is transposed; a 4-D
  weight is an OIHW convolution kernel, reshaped so that each input channel's kh x kw patch is
  kh*kw consecutive rows (``quantize.conv_to_matrix``).
- ``keras``: 2-D kernels are (inputs, outputs); 4-D kernels are HWIO.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import quantize as qz
from .api import encode, sizes
from .bounds import entropy_limits
from .errors import FormatError, QuantizeError, ShapeError
from .formats.base import Encoded, Matrix
from .io import ContainerWriter, open_file, save
from .io.container import file_cost
from .progress import progress

LAYOUTS = ("as-is", "torch", "keras")
META_KEY = "sparsecodec.pack"


class _HDF5Writer:
    """The ``ContainerWriter`` interface for the HDF5 backend: tensors are collected and the
    file is written at the end (h5py files are not streamed through a temporary)."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.metadata: dict[str, str] = {}
        self.tensors: dict[str, Any] = {}

    def add(self, name: str, tensor: Any) -> None:
        self.tensors[name] = tensor

    def __enter__(self) -> _HDF5Writer:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            save(self.path, self.tensors, metadata=self.metadata)


def _writer(path: str | os.PathLike) -> Any:
    ext = os.path.splitext(str(path))[1].lower()
    return _HDF5Writer(path) if ext in (".h5", ".hdf5", ".hdf") else ContainerWriter(path)


@dataclass(frozen=True)
class PackedTensor:
    """One line of the pack report."""

    name: str
    shape: tuple[int, ...]
    matrix: tuple[int, int] | None  # None: stored as a plain array
    format: str
    nbytes: int
    raw_bytes: int
    zeros: float | None = None       # fraction of zero entries in the stored matrix
    k: int | None = None             # distinct nonzero values
    limit_bytes: float | None = None  # positions + values entropy limit


def to_matrix(a: np.ndarray, layout: str) -> tuple[np.ndarray, str]:
    """The (inputs, outputs) matrix of a weight tensor and the name of the transform used."""
    if layout not in LAYOUTS:
        raise ShapeError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if a.ndim == 2:
        return (np.ascontiguousarray(a.T), "T") if layout == "torch" else (a, "none")
    if a.ndim == 4 and layout == "torch":
        return qz.conv_to_matrix(a, "OIHW"), "oihw"
    if a.ndim == 4 and layout == "keras":
        return qz.conv_to_matrix(a, "HWIO"), "hwio"
    return np.ascontiguousarray(a.reshape(-1, a.shape[-1])), "flatten"


def from_matrix(W: np.ndarray, transform: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`to_matrix`."""
    if transform == "none":
        return W
    if transform == "T":
        return np.ascontiguousarray(W.T)
    if transform == "oihw":
        return qz.matrix_to_conv(W, shape, "OIHW")  # type: ignore[arg-type]
    if transform == "hwio":
        return qz.matrix_to_conv(W, shape, "HWIO")  # type: ignore[arg-type]
    if transform == "flatten":
        return W.reshape(shape)
    raise FormatError(f"unknown tensor transform {transform!r} in the pack metadata")


def parse_quantizer(spec: str | None) -> tuple[str, dict[str, int]] | None:
    """``"kmeans:32"`` -> ("kmeans", {"k": 32}); ``"pq:d=8,k=256"`` -> ("pq", {...})."""
    if not spec:
        return None
    method, _, args = spec.partition(":")
    methods = (*qz.METHODS, "pq")
    if method not in methods or method == "gwk":
        raise QuantizeError(f"--quantize: unknown method {method!r}; use one of "
                            f"{', '.join(m for m in methods if m != 'gwk')} as METHOD:K "
                            "(pq:d=8,k=256)")
    opts: dict[str, int] = {}
    try:
        for part in filter(None, args.split(",")):
            key, eq, val = part.partition("=")
            if eq:
                opts[key.strip()] = int(val)
            else:
                opts["k"] = int(key)
    except ValueError as exc:
        raise QuantizeError(f"--quantize {spec!r}: arguments must be integers") from exc
    need = {"d", "k"} if method == "pq" else {"k"}
    if set(opts) != need:
        raise QuantizeError(f"--quantize {spec!r}: {method} takes "
                            f"{'d=D,k=K' if method == 'pq' else 'K'}")
    return method, opts


def _encode(M: Matrix, fmt: str) -> Encoded:
    """``encode``, except that ``auto`` judges a format by what it adds to the file (its
    components, its header entry and their alignment), not by its component bytes alone: on a
    small layer a format with more components or a longer meta loses what its components win.
    Only the formats within 2 KiB of the smallest by component bytes are encoded to compare."""
    if fmt != "auto":
        return encode(M, format=fmt)
    table = sizes(M)
    best = min(table.values())
    return min((encode(M, format=f) for f, size in table.items() if size <= best + 2048),
               key=file_cost)


def _compress(W: np.ndarray, prune: float | None, quant: tuple[str, dict[str, int]] | None,
              fmt: str) -> tuple[Encoded, Matrix | None]:
    """The encoded matrix, and the exact matrix it holds, analysed once for both the encoder
    and the report (None for pq: it never exists)."""
    P = qz.prune(W, prune).weights if prune else W
    if quant is None:
        M = Matrix(P)
        return _encode(M, fmt), M
    method, opts = quant
    if method == "pq":
        mask = P != 0 if prune else None
        return qz.product_quantize(P, opts["d"], opts["k"], mask=mask, pad=True), None
    if method == "ecsq":
        q = qz.ecsq(P, 4 * opts["k"], levels=opts["k"])
    else:
        q = qz.quantize(P, method, opts["k"])
    M = Matrix(q.values)
    return _encode(M, fmt), M


def pack(tensors: Mapping[str, Any], path: str | os.PathLike, *, prune: float | None = None,
         quantize: str | None = None, format: str = "auto", layers: str | None = None,
         layout: str = "as-is", show_progress: bool = False,
         model: list[dict[str, Any]] | None = None) -> list[PackedTensor]:
    """Write ``tensors`` to the container ``path``; see the module docstring. ``quantize`` is
    a spec like ``"kmeans:32"`` or ``"pq:d=8,k=256"``; ``layers`` a regex on tensor names
    (default: every float tensor of 2 or more dimensions); ``model`` a layer list that
    ``runtime.load_model`` will run (stored as metadata). Returns one report line per tensor.
    Raises :class:`FormatError` when no tensor is a weight matrix."""
    quant = parse_quantizer(quantize)
    if layout not in LAYOUTS:
        raise ShapeError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    pattern = re.compile(layers) if layers else None
    chosen = [name for name, a in tensors.items()
              if np.asarray(a).dtype.kind == "f" and np.ndim(a) >= 2 and np.size(a) > 0
              and (pattern is None or pattern.search(name))]
    if not chosen:
        raise FormatError("no weight matrix to pack (no float tensor of 2+ dimensions"
                          f"{' matching ' + repr(layers) if layers else ''})")
    record: dict[str, Any] = {}
    report = []
    names = list(tensors)
    with _writer(path) as out:
        for i, name in enumerate(names):
            a = np.asarray(tensors[name])
            if show_progress:
                progress(i, len(names), name[-40:])
            if name not in chosen:
                out.add(name, a)
                report.append(PackedTensor(name, a.shape, None, "array", a.nbytes, a.nbytes))
                continue
            W, transform = to_matrix(a, layout)
            enc, held = _compress(W, prune, quant, format)
            record[name] = {"shape": list(a.shape), "transform": transform}
            out.add(name, enc)
            k = limit = None
            if held is not None:
                limit = entropy_limits(held).sparse / 8
                k = int(np.unique(held.W[held.W != 0]).size)
            report.append(PackedTensor(name, a.shape, W.shape, enc.format, enc.nbytes, a.nbytes,
                                       1 - enc.nnz / W.size, k, limit))
        out.metadata[META_KEY] = json.dumps({"version": 1, "layout": layout,
                                             "tensors": record})
        if model is not None:
            out.metadata["sparsecodec.model"] = json.dumps(model)
        if show_progress:
            progress(len(names), len(names), "done")
    return report


def unpack(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a packed file in its original shape and layout (weights decoded)."""
    out: dict[str, np.ndarray] = {}
    with open_file(path) as f:
        info = json.loads(f.metadata.get(META_KEY, "{}") or "{}")
        record = info.get("tensors", {}) if isinstance(info, dict) else {}
        for name in f:
            x = f[name]
            if isinstance(x, Encoded):
                W = x.decode()
                r = record.get(name)
                out[name] = from_matrix(W, r["transform"], tuple(r["shape"])) if r else W
            else:
                out[name] = np.array(x)
    return out
