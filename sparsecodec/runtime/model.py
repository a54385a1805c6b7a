"""A small model runner built from a packed file: a layer list, or a graph of layers.

The description is JSON in the file's metadata under ``sparsecodec.model``: a list of
layers, each ``{"type": ..., ...}`` with

- ``{"type": "linear", "weight": NAME, "bias": NAME or null, "activation": "relu"}``
  (inputs (..., n): every leading axis is a batch axis)
- ``{"type": "conv2d", "weight": NAME, "bias": NAME or null, "kernel_size": [kh, kw],
  "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "activation": "linear"}``
- ``{"type": "maxpool2d" | "avgpool2d", "kernel_size": 2, "stride": 2}``,
  ``{"type": "globalavgpool"}``
- ``{"type": "flatten", "order": "nchw" | "nhwc"}``, ``{"type": "activation", "name": "relu"}``,
  ``{"type": "transpose", "axes": [0, 3, 1, 2]}``, ``{"type": "take", "axis": 1, "index": 0}``
- ``{"type": "layernorm", "weight": NAME, "bias": NAME, "eps": 1e-12}``
- ``{"type": "batchnorm", "mean": NAME, "var": NAME, "weight": NAME, "bias": NAME,
  "eps": 1e-5}`` (``fold_batchnorm`` folds it into the layer before it)
- ``{"type": "embedding", "weight": NAME, "tokens": "columns" | "rows", "positions": false,
  "fixed": null}`` (ids in, rows out; ``positions``: row p at position p; ``fixed``: one row)
- ``{"type": "add", "input": [A, B, ...], "activation": "linear"}``
- ``{"type": "attention", "input": [Q, K, V], "heads": 12, "mask": INPUT or null,
  "causal": false}``

Layers run in order. A graph, not only a chain: any layer may carry ``"name"`` (its output
is kept under that name) and ``"input"`` (a name, or a list of names, instead of the output
of the layer before it). The model's inputs are names too: ``"input"`` by default, or those
of ``model(input_ids=..., attention_mask=...)``. The model returns the last layer's output.

``NAME`` is a tensor of the same file. Weights stay encoded (memory-mapped); vectors (biases,
norms) are read as arrays. ``pack(..., model=layers)`` writes the description.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..dtypes import widen
from ..errors import FormatError, OptionError, ShapeError
from ..formats.base import Encoded
from ..io import open_file
from ..io.tensors import parse_json
from .layers import (
    Activation,
    Add,
    Attention,
    BatchNorm,
    CompressedConv2d,
    CompressedLinear,
    Embedding,
    Flatten,
    GlobalAvgPool,
    LayerNorm,
    Pool2d,
    Take,
    Transpose,
)

MODEL_KEY = "sparsecodec.model"
LAYER_TYPES = ("linear", "conv2d", "maxpool2d", "avgpool2d", "globalavgpool", "flatten",
               "transpose", "activation", "take", "layernorm", "batchnorm", "embedding", "add",
               "attention")
MAX_DESCRIPTION = 16 << 20  # bytes of a model description file (pack --model)


WEIGHT_TYPES = ("linear", "conv2d")  # the layers that hold a weight matrix
# every field of a layer that names a tensor of the file, by layer type (None: optional)
TENSOR_FIELDS: dict[str, dict[str, bool]] = {
    "linear": {"weight": True, "bias": False},
    "conv2d": {"weight": True, "bias": False},
    "layernorm": {"weight": True, "bias": False},
    "batchnorm": {"mean": True, "var": True, "weight": False, "bias": False},
    "embedding": {"weight": True},
}


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
        for key, required in TENSOR_FIELDS.get(kind, {}).items():
            name = L.get(key)
            if (required or name is not None) and name not in known:
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


class Graph:
    """Layers run in order, each on the outputs named by its inputs (the previous layer's
    output by default): ``model(x)`` or ``model(input_ids=..., attention_mask=...)``."""

    def __init__(self, layers: Sequence[Callable[..., np.ndarray]],
                 inputs: Sequence[Sequence[str] | None] | None = None,
                 names: Sequence[str | None] | None = None):
        self.layers = list(layers)
        self.inputs = list(inputs) if inputs is not None else [None] * len(self.layers)
        self.names = list(names) if names is not None else [None] * len(self.layers)

    def __call__(self, x: Any = None, **inputs: Any) -> np.ndarray:
        values: dict[str, Any] = dict(inputs)
        if x is not None:
            values["input"] = np.asarray(x)
        if not values:
            raise ShapeError("the model takes its input as model(x) or model(name=array)")
        y = values.get("input", next(iter(values.values())))
        for i, (layer, wants, name) in enumerate(zip(self.layers, self.inputs, self.names,
                                                     strict=True)):
            if wants is None:
                y = layer(y)
            else:
                missing = [w for w in wants if w not in values]
                if missing:
                    raise ShapeError(f"layer {i} reads {missing[0]!r}, which no input or "
                                     f"earlier layer gives (have: {', '.join(values)})")
                y = layer(*(values[w] for w in wants))
            if name is not None:
                values[name] = y
        return y

    @property
    def nbytes(self) -> int:
        """Bytes of the encoded weights (every part of a low-rank one) and the arrays (biases,
        norms, dense tables) the layers hold."""
        from ..tune.lowrank import LowRank

        total = 0
        for layer in self.layers:
            for attr in ("weight", "bias", "mean", "var"):
                v = getattr(layer, attr, None)
                if isinstance(v, (Encoded, LowRank, np.ndarray)):
                    total += v.nbytes
        return total


class Sequential(Graph):
    """Layers applied in order: ``model(x)``."""

    def __init__(self, layers: Sequence[Callable[[np.ndarray], np.ndarray]]):
        super().__init__(layers)


def _weight(tensors: Any, name: str) -> Any:
    """The weight ``name``: an encoded matrix, or a low-rank layer stored as its parts
    (``NAME.lowrank.U``, ``.V`` and optionally ``.S``, as ``pack`` writes one)."""
    from ..tune.lowrank import assemble, part_name

    if name not in tensors and part_name(name, "U") in tensors:
        return assemble(tensors, name)
    return tensors[name]


def _names(v: Any, what: str) -> list[str]:
    v = [v] if isinstance(v, str) else v
    if not isinstance(v, list) or not v or not all(isinstance(n, str) for n in v):
        raise FormatError(f"{what} must be a name or a list of names, got {str(v)[:60]}")
    return v


def _layer(kind: Any, L: dict[str, Any], tensors: Any, dense: bool, i: int,
           transforms: Mapping[str, str] | None) -> Any:
    from ..tune.lowrank import LowRank

    def vector(key: str) -> Any:
        name = L.get(key)
        if name is None:
            return None
        v = tensors[name]
        if isinstance(v, Encoded) and v.shape[0] == 1:  # a vector pack stored as one row
            return widen(v.decode()[0])
        if isinstance(v, (Encoded, LowRank)):
            raise FormatError(f"layer {i} ({kind}): {key} {name!r} is a matrix, not a vector")
        return widen(np.asarray(v))

    if kind in WEIGHT_TYPES:
        w = _weight(tensors, L["weight"])
        if dense and isinstance(w, np.ndarray) and w.ndim == 2:
            w = np.asarray(w, np.float64)
        elif not isinstance(w, (Encoded, LowRank)):
            raise FormatError(f"layer {i}: weight {L['weight']!r} is not an encoded matrix")
        b = vector("bias")
        if kind == "linear":
            return CompressedLinear(w, b, L.get("activation", "linear"))
        return CompressedConv2d(w, L["kernel_size"], b, L.get("stride", 1), L.get("padding", 0),
                                L.get("activation", "linear"), L.get("groups", 1),
                                L.get("dilation", 1))
    if kind in ("maxpool2d", "avgpool2d"):
        return Pool2d(kind[:3], L["kernel_size"], L.get("stride"))
    if kind == "globalavgpool":
        return GlobalAvgPool()
    if kind == "flatten":
        return Flatten(L.get("order", "nchw") == "nhwc")
    if kind == "transpose":
        return Transpose(L["axes"])
    if kind == "take":
        return Take(L["axis"], L["index"])
    if kind == "activation":
        return Activation(L["name"])
    if kind == "layernorm":
        return LayerNorm(vector("weight"), vector("bias"), L.get("eps", 1e-5))
    if kind == "batchnorm":
        return BatchNorm(vector("mean"), vector("var"), vector("weight"), vector("bias"),
                         L.get("eps", 1e-5))
    if kind == "embedding":
        w = tensors[L["weight"]]
        if not isinstance(w, Encoded):
            w = widen(np.asarray(w))
            if w.ndim != 2:
                raise FormatError(f"layer {i}: embedding table {L['weight']!r} is not a matrix")
        tokens = L.get("tokens", "columns")
        if transforms is not None:  # a packed file says how it stored the table
            tokens = "columns" if transforms.get(L["weight"]) == "T" else "rows"
        return Embedding(w, tokens, L.get("positions", False), L.get("fixed"))
    if kind == "add":
        return Add(L.get("activation", "linear"))
    if kind == "attention":
        return Attention(L["heads"], L.get("causal", False))
    raise FormatError(f"layer {i}: unknown type {kind!r}")


def build(spec: Sequence[dict[str, Any]], tensors: Any, dense: bool = False,
          transforms: Mapping[str, str] | None = None) -> Graph:
    """A model from a layer list (see the module docstring) and a name -> tensor mapping.
    ``dense``: the weights may be plain (inputs, outputs) arrays (a reference run, and the
    calibration capture of ``sparsecodec.tune``). ``transforms``: how a packed file stored
    each tensor (its pack records; a tensor without one was stored as the framework held
    it), which decides an embedding table's orientation instead of its ``tokens``. A chain
    of unnamed layers is a :class:`Sequential`."""
    layers: list[Callable[..., np.ndarray]] = []
    inputs: list[list[str] | None] = []
    names: list[str | None] = []
    for i, L in enumerate(spec):
        kind = L.get("type") if isinstance(L, dict) else None
        try:
            layers.append(_layer(kind, L, tensors, dense, i, transforms))
            wants = None if L.get("input") is None else _names(L["input"], f"layer {i}: input")
            if kind == "attention":
                if wants is None or len(wants) != 3:
                    raise FormatError(f"layer {i}: attention reads three inputs [q, k, v]")
                if L.get("mask") is not None:
                    wants = wants + _names(L["mask"], f"layer {i}: mask")[:1]
            elif kind == "add" and (wants is None or len(wants) < 2):
                raise FormatError(f"layer {i}: add reads a list of at least two inputs")
            name = L.get("name")
            if name is not None and not isinstance(name, str):
                raise FormatError(f"layer {i}: name must be a string")
            inputs.append(wants)
            names.append(name)
        except KeyError as exc:
            raise FormatError(f"layer {i} ({kind}): missing {exc}") from exc
        except (TypeError, ValueError, ShapeError, OptionError) as exc:  # a wrong field
            if isinstance(exc, FormatError):
                raise
            raise FormatError(f"layer {i} ({kind}): {type(exc).__name__}: {exc}") from None
    if all(w is None for w in inputs) and all(n is None for n in names):
        return Sequential(layers)
    return Graph(layers, inputs, names)


def fold_batchnorm(spec: Sequence[dict[str, Any]], tensors: Mapping[str, Any],
                   layout: str = "torch") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The layer list and tensors with every ``batchnorm`` that directly follows a
    ``linear`` or ``conv2d`` layer (which has no activation, and whose output nothing else
    reads) folded into that layer: its weight's output channels are scaled and its bias
    shifted, so the model computes the same function with one layer less and the folded
    weight is what gets quantized. ``layout``: how the weights are laid out, "torch"
    (outputs first: (out, in), OIHW) or "matrix" (outputs last: (in, out) as the runtime
    multiplies, HWIO). The folded bias takes the batchnorm's bias name; the batchnorm's
    other tensors are dropped. Other batchnorms are kept as layers."""
    if layout not in ("torch", "matrix"):
        raise OptionError(f"layout must be 'torch' or 'matrix', got {layout!r}")
    out_spec: list[dict[str, Any]] = []
    out = dict(tensors)
    read = [n for L in spec if isinstance(L, dict)
            for n in ([] if L.get("input") is None else
                      [L["input"]] if isinstance(L["input"], str) else L["input"])]
    dropped: set[str] = set()
    for L in spec:
        prev = out_spec[-1] if out_spec else None
        # the batchnorm reads prev's output, and no other layer does: after folding, prev's
        # output is the batchnorm's
        follows = (prev is not None and L.get("input") in (None, prev.get("name"))
                   and (prev.get("name") is None or read.count(prev["name"]) ==
                        (1 if L.get("input") is not None else 0)))
        if (L.get("type") != "batchnorm" or prev is None or not follows
                or prev.get("type") not in WEIGHT_TYPES
                or prev.get("activation", "linear") != "linear"):
            out_spec.append(dict(L))
            continue
        bn = BatchNorm(out[L["mean"]], out[L["var"]],
                       None if L.get("weight") is None else out[L["weight"]],
                       None if L.get("bias") is None else out[L["bias"]], L.get("eps", 1e-5))
        scale, shift = bn.scale_shift()
        W = np.asarray(out[prev["weight"]])
        axis = 0 if layout == "torch" else W.ndim - 1
        if W.shape[axis] != scale.shape[0]:
            raise ShapeError(f"batchnorm {L['mean']!r} has {scale.shape[0]} channels, the "
                             f"weight {prev['weight']!r} {W.shape[axis]} outputs ({layout})")
        shape = [1] * W.ndim
        shape[axis] = -1
        out[prev["weight"]] = (W * scale.reshape(shape)).astype(W.dtype)
        b = np.zeros_like(scale) if prev.get("bias") is None else \
            np.asarray(out[prev["bias"]], np.float64)
        bias_name = L.get("bias") or L["mean"]
        out[bias_name] = (b * scale + shift).astype(W.dtype)
        if prev.get("bias") is not None and prev["bias"] != bias_name:
            dropped.add(prev["bias"])
        prev["bias"] = bias_name
        dropped.update(L[k] for k in ("mean", "var", "weight") if L.get(k) and L[k] != bias_name)
        if L.get("name") is not None:
            prev["name"] = L["name"]
        if L.get("activation", "linear") != "linear":
            prev["activation"] = L["activation"]
    for n in dropped:
        out.pop(n, None)
    return out_spec, out


def load_model(path: str | os.PathLike) -> Graph:
    """The model described in a packed file's metadata, on its encoded weights."""
    f = open_file(path)
    text = f.metadata.get(MODEL_KEY)
    if not text:
        raise FormatError(f"{path}: no model description ({MODEL_KEY!r} metadata)")
    spec = parse_json(text, f"{path}: the model description")
    if not isinstance(spec, list):
        raise FormatError(f"{path}: the model description must be a list of layers")
    from ..pack import META_KEY, pack_records

    if META_KEY not in f.metadata:  # not written by pack: the description's own tokens
        return build(spec, f)
    records = pack_records(f.metadata, str(path))
    return build(spec, f, transforms={n: r["transform"] for n, r in records.items()})
