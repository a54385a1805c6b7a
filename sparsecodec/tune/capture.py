"""Calibration statistics from a model run: each weight layer's ``H = X^T X``, where X holds
the inputs that layer saw (for a convolution, its im2col patches: one row per output
position), captured by running the runtime's layer list on the float weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..runtime.layers import CompressedConv2d, CompressedLinear, patches
from ..runtime.model import build


def layer_hessians(spec: Sequence[dict[str, Any]], matrices: Mapping[str, Any], x: Any,
                   batch: int = 256) -> dict[str, np.ndarray]:
    """``{weight name: X^T X}`` for every linear and conv2d layer of the runtime layer list
    ``spec`` run on ``x`` (model inputs, in batches of ``batch``), with ``matrices`` the
    tensors by name, weights as (inputs, outputs) matrices (as ``pack`` stores them)."""
    model = build(spec, matrices, dense=True)
    names = [L["weight"] for L in spec if L.get("type") in ("linear", "conv2d")]
    H: dict[str, np.ndarray] = {}
    hooked = [layer for layer in model.layers
              if isinstance(layer, (CompressedLinear, CompressedConv2d))]

    def hook(layer: Any, name: str) -> Any:
        call = layer.__call__

        def run(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a, np.float64)
            if isinstance(layer, CompressedConv2d):
                X, _, _ = patches(a, layer.kh, layer.kw, layer.stride, layer.padding)
            else:
                X = a.reshape(-1, a.shape[-1])
            H[name] = H.get(name, 0) + X.T @ X
            return call(a)

        return run

    model.layers = [hook(layer, n) if layer in hooked else layer
                    for layer, n in zip(model.layers, _names(model.layers, hooked, names),
                                        strict=True)]
    x = np.asarray(x, np.float64)
    for s in range(0, len(x), batch):
        model(x[s:s + batch])
    return H


def _names(layers: list[Any], hooked: list[Any], names: list[str]) -> list[str]:
    it = iter(names)
    return [next(it) if layer in hooked else "" for layer in layers]


def quantize_sequentially(spec: Sequence[dict[str, Any]], matrices: Mapping[str, Any], x: Any,
                          quantize: Callable[[str, np.ndarray, np.ndarray], np.ndarray],
                          batch: int = 256) -> dict[str, np.ndarray]:
    """Quantize the weight layers of ``spec`` in order, each with the inputs it gets once the
    layers before it are quantized (GPTQ's sequential procedure): ``quantize(name, W, H)``
    returns layer ``name``'s quantized matrix for ``H = X^T X`` of those inputs. Returns
    ``{name: quantized matrix}``. One run of the model on ``x`` per weight layer."""
    current = dict(matrices)
    out: dict[str, np.ndarray] = {}
    for L in spec:
        if L.get("type") not in ("linear", "conv2d"):
            continue
        name = L["weight"]
        H = layer_hessians(spec, current, x, batch)[name]
        out[name] = quantize(name, np.asarray(current[name]), H)
        current[name] = out[name]
    return out
