"""Integer quantization (int4/int8 style): each weight becomes ``scale * L`` for an integer L,
with one scale per column (output channel) or per tensor. The values lie on a grid through
0, which the ``grid`` format stores as 4- or 8-bit codes and multiplies fastest."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import QuantizeError
from .result import Quantized, check_weights, from_values

PER = ("column", "tensor")


def integer(W: Any, bits: int = 8, *, per: str = "column", symmetric: bool = True) -> Quantized:
    """Round every weight to ``scale * L``, L an integer, computed in float64 and rounded once
    to W's dtype.

    - ``symmetric=True`` (default): L in [-(2^(bits-1) - 1), 2^(bits-1) - 1] and scale =
      max |w| / (2^(bits-1) - 1): 15 levels for 4 bits, 255 for 8;
    - ``symmetric=False``: 2^bits levels over [min(w, 0), max(w, 0)] with an integer zero
      point, so 0 stays exactly representable;
    - ``per="column"``: one scale per column of the 2-D W (per output channel in this library's
      (inputs, outputs) layout); ``per="tensor"``: one for the whole array (any shape).

    Zeros stay +0.0 (pruned weights stay pruned) and no value is -0.0. ``bits`` is 2 to 8:
    the grid format stores up to 8-bit codes. O(size), plus a sort for the codebook."""
    A = check_weights(W)
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise QuantizeError(f"bits must be an integer in 2..8, got {bits!r}")
    if per not in PER:
        raise QuantizeError(f"per must be one of {PER}, got {per!r}")
    if per == "column" and A.ndim != 2:
        raise QuantizeError(f"per='column' needs a 2-D matrix, got {A.ndim} dimension(s)")
    V = A.astype(np.float64).reshape(A.shape if per == "column" else (-1, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        if symmetric:
            top = (1 << (bits - 1)) - 1
            scale = np.abs(V).max(axis=0, initial=0.0) / top
            L = np.clip(np.rint(np.where(scale > 0, V / scale, 0.0)), -top, top)
        else:
            lo = np.minimum(V.min(axis=0, initial=0.0), 0.0)
            hi = np.maximum(V.max(axis=0, initial=0.0), 0.0)
            scale = (hi - lo) / ((1 << bits) - 1)
            z = np.rint(np.where(scale > 0, -lo / scale, 0.0))
            L = np.clip(np.rint(np.where(scale > 0, V / scale, 0.0)) + z, 0, (1 << bits) - 1) - z
    L = L.astype(np.int64)  # an integer 0: the product is +0.0, never -0.0
    values = (scale * L).astype(A.dtype).reshape(A.shape)
    return from_values(A, values, "integer", {"bits": int(bits), "per": per,
                                               "symmetric": symmetric,
                                               "scales": scale.reshape(-1)})
