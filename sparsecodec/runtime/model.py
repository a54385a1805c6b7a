"""A small sequential model runner built from a packed file.

The layer sequence is JSON in the file's metadata under ``sparsecodec.model``: a list of
layers, each ``{"type": ..., ...}`` with

- ``{"type": "linear", "weight": NAME, "bias": NAME or null, "activation": "relu"}``
- ``{"type": "conv2d", "weight": NAME, "bias": NAME or null, "kernel_size": [kh, kw],
  "stride": 1, "padding": 0, "activation": "linear"}``
- ``{"type": "maxpool2d" | "avgpool2d", "kernel_size": 2, "stride": 2}``
- ``{"type": "flatten", "order": "nchw" | "nhwc"}``, ``{"type": "activation", "name": "relu"}``,
  ``{"type": "transpose", "axes": [0, 3, 1, 2]}``

``NAME`` is a tensor of the same file. Weights stay encoded (memory-mapped); biases are read
as arrays. ``pack(..., model=layers)`` writes the description.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import FormatError
from ..formats.base import Encoded
from ..io import open_file
from ..io.tensors import parse_json
from .layers import (
    Activation,
    CompressedConv2d,
    CompressedLinear,
    Flatten,
    Pool2d,
    Transpose,
)

MODEL_KEY = "sparsecodec.model"
LAYER_TYPES = ("linear", "conv2d", "maxpool2d", "avgpool2d", "flatten", "transpose",
               "activation")
MAX_DESCRIPTION = 16 << 20  # bytes of a model description file (pack --model)


WEIGHT_TYPES = ("linear", "conv2d")  # the layers that hold a weight matrix


def weight_names(spec: Sequence[dict[str, Any]]) -> list[str]:
    """The weight tensors of a layer list, in the order its layers use them."""
    return [L["weight"] for L in spec if isinstance(L, dict) and L.get("type") in WEIGHT_TYPES]


def check_spec(spec: Any, names: Sequence[str], where: str) -> list[dict[str, Any]]:
    """A layer list as ``pack(model=...)`` stores it, checked before packing: a list of objects
    of known ``type`` whose ``weight`` and ``bias`` name tensors of the model (``names``).
    The fields of each layer are checked when the model is built (``load_model``)."""
    if not isinstance(spec, list) or not spec:
        raise FormatError(f"{where}: a model description is a non-empty list of layers")
    known = set(names)
    for i, L in enumerate(spec):
        kind = L.get("type") if isinstance(L, dict) else None
        if kind not in LAYER_TYPES:
            raise FormatError(f"{where}: layer {i}: type {str(kind)[:40]!r} is not one of "
                              f"{', '.join(LAYER_TYPES)}")
        for key in ("weight", "bias") if kind in WEIGHT_TYPES else ():
            name = L.get(key)
            if (key == "weight" or name is not None) and name not in known:
                raise FormatError(f"{where}: layer {i} ({kind}): {key} {str(name)[:80]!r} is "
                                  "not a tensor of the model")
    return spec


def read_spec(path: str | os.PathLike, names: Sequence[str]) -> list[dict[str, Any]]:
    """A model description from a JSON file (``pack --model FILE``), checked by
    :func:`check_spec` against the model's tensor ``names``."""
    from ..io.files import read_small

    spec = parse_json(read_small(path, "model description", MAX_DESCRIPTION),
                      f"{path}: the model description")
    return check_spec(spec, names, str(path))


class Sequential:
    """Layers applied in order: ``model(x)``."""

    def __init__(self, layers: Sequence[Callable[[np.ndarray], np.ndarray]]):
        self.layers = list(layers)

    def __call__(self, x: Any) -> np.ndarray:
        y = np.asarray(x, np.float64)
        for layer in self.layers:
            y = layer(y)
        return y

    @property
    def nbytes(self) -> int:
        """Bytes of the encoded weights (every part of a low-rank one) and the biases the
        layers hold."""
        from ..tune.lowrank import LowRank

        total = 0
        for layer in self.layers:
            for attr in ("weight", "bias"):
                v = getattr(layer, attr, None)
                if isinstance(v, (Encoded, LowRank, np.ndarray)):
                    total += v.nbytes
        return total


def _weight(tensors: Any, name: str) -> Any:
    """The weight ``name``: an encoded matrix, or a low-rank layer stored as its parts
    (``NAME.lowrank.U``, ``.V`` and optionally ``.S``, as ``pack`` writes one)."""
    from ..tune.lowrank import assemble, part_name

    if name not in tensors and part_name(name, "U") in tensors:
        return assemble(tensors, name)
    return tensors[name]


def build(spec: Sequence[dict[str, Any]], tensors: Any, dense: bool = False) -> Sequential:
    """A model from a layer list (see the module docstring) and a name -> tensor mapping.
    ``dense``: the weights may be plain (inputs, outputs) arrays (a reference run, and the
    calibration capture of ``sparsecodec.tune``)."""
    from ..tune.lowrank import LowRank

    layers: list[Callable[[np.ndarray], np.ndarray]] = []
    for i, L in enumerate(spec):
        kind = L.get("type") if isinstance(L, dict) else None
        try:
            if kind in WEIGHT_TYPES:
                w = _weight(tensors, L["weight"])
                if dense and isinstance(w, np.ndarray) and w.ndim == 2:
                    w = np.asarray(w, np.float64)
                elif not isinstance(w, (Encoded, LowRank)):
                    raise FormatError(f"layer {i}: weight {L['weight']!r} is not an encoded "
                                      "matrix")
                b = tensors[L["bias"]] if L.get("bias") else None
                if kind == "linear":
                    layers.append(CompressedLinear(w, b, L.get("activation", "linear")))
                else:
                    layers.append(CompressedConv2d(w, L["kernel_size"], b, L.get("stride", 1),
                                                   L.get("padding", 0),
                                                   L.get("activation", "linear")))
            elif kind in ("maxpool2d", "avgpool2d"):
                layers.append(Pool2d(kind[:3], L["kernel_size"], L.get("stride")))
            elif kind == "flatten":
                layers.append(Flatten(L.get("order", "nchw") == "nhwc"))
            elif kind == "transpose":
                layers.append(Transpose(L["axes"]))
            elif kind == "activation":
                layers.append(Activation(L["name"]))
            else:
                raise FormatError(f"layer {i}: unknown type {kind!r}")
        except KeyError as exc:
            raise FormatError(f"layer {i} ({kind}): missing {exc}") from exc
        except (TypeError, ValueError) as exc:  # a field of the wrong type or value
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"layer {i} ({kind}): {type(exc).__name__}: {exc}") from None
    return Sequential(layers)


def load_model(path: str | os.PathLike) -> Sequential:
    """The model described in a packed file's metadata, on its encoded weights."""
    f = open_file(path)
    text = f.metadata.get(MODEL_KEY)
    if not text:
        raise FormatError(f"{path}: no model description ({MODEL_KEY!r} metadata)")
    spec = parse_json(text, f"{path}: the model description")
    if not isinstance(spec, list):
        raise FormatError(f"{path}: the model description must be a list of layers")
    return build(spec, f)
