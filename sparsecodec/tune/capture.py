"""Calibration statistics from a model run: each weight layer's ``H = X^T X``, where X holds
the inputs that layer saw (for a convolution, its im2col patches: one row per output
position), captured by running the runtime's layer list on dense weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..runtime.layers import CompressedConv2d, CompressedLinear, patches
from ..runtime.model import build, weight_names
from .calibrated import DAMP


def layer_inputs(spec: Sequence[dict[str, Any]], matrices: Mapping[str, Any], x: np.ndarray,
                 stop: str | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(weight name, the rows X that layer multiplies: ``X @ W``) for each weight layer of
    ``spec`` run on the batch ``x`` with the dense ``matrices``, in order (a convolution's X
    is its im2col patches); the run ends after layer ``stop``."""
    model = build(spec, matrices, dense=True)
    names = iter(weight_names(spec))
    a = np.asarray(x, np.float64)
    for layer in model.layers:
        if isinstance(layer, (CompressedLinear, CompressedConv2d)):
            name = next(names)
            if isinstance(layer, CompressedConv2d):
                X, _, _ = patches(a, layer.kh, layer.kw, layer.stride, layer.padding)
            else:
                X = a.reshape(-1, a.shape[-1])
            yield name, X
            if name == stop:
                return
        a = layer(a)


def layer_hessians(spec: Sequence[dict[str, Any]], matrices: Mapping[str, Any], x: Any,
                   batch: int = 256) -> dict[str, np.ndarray]:
    """``{weight name: X^T X}`` for every linear and conv2d layer of the runtime layer list
    ``spec`` run on ``x`` (model inputs, in batches of ``batch``), with ``matrices`` the
    tensors by name, weights as (inputs, outputs) matrices (as ``pack`` stores them)."""
    x = np.asarray(x, np.float64)
    H: dict[str, np.ndarray] = {}
    for s in range(0, len(x), batch):
        for name, X in layer_inputs(spec, matrices, x[s:s + batch]):
            H[name] = H.get(name, 0) + X.T @ X
    return H


def quantize_sequentially(spec: Sequence[dict[str, Any]], matrices: Mapping[str, Any], x: Any,
                          quantize: Callable[[str, np.ndarray, np.ndarray], np.ndarray],
                          batch: int = 256, damp: float = DAMP) -> dict[str, np.ndarray]:
    """Quantize the weight layers of ``spec`` in order, each for the inputs ``X_q`` it gets
    once the layers before it are quantized (GPTQ's sequential procedure), towards the
    outputs of the float model: the target is ``W' = argmin ||X_q W' - X_f W||`` (ridge
    damped), so the error the earlier layers left is corrected where it can be (``X_f``: the
    float model's inputs to the layer; ``W' = W`` when they agree). Measured on the digits
    models (``bench/model_rd.py``), this target mattered most at high compression.
    ``quantize(name, W', H)`` returns the layer's quantized matrix for ``H = X_q^T X_q``.
    Returns ``{name: quantized matrix}``; two runs of the model on ``x`` per weight layer."""
    x = np.asarray(x, np.float64)
    current = dict(matrices)
    out: dict[str, np.ndarray] = {}
    for name in weight_names(spec):
        H: Any = 0
        C: Any = 0
        for s in range(0, len(x), batch):
            xb = x[s:s + batch]
            Xf = dict(layer_inputs(spec, matrices, xb, name))[name]
            Xq = dict(layer_inputs(spec, current, xb, name))[name]
            H = H + Xq.T @ Xq
            C = C + Xq.T @ Xf
        W = np.asarray(matrices[name])
        Hd = np.array(H, np.float64)
        Hd[np.diag_indices_from(Hd)] += damp * max(float(np.mean(np.diag(Hd))), 1e-12)
        # W' = (H + damp)^-1 C W, the ridge least-squares target; W itself when the inputs
        # agree (the first layer): nothing to correct
        target = W if np.array_equal(C, H) else \
            np.linalg.solve(Hd, C @ W.astype(np.float64)).astype(W.dtype)
        out[name] = quantize(name, target, H)
        current[name] = out[name]
    return out
