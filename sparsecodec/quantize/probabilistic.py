"""Probabilistic quantization (PWS of the sHAM paper): unbiased stochastic rounding between
quantile edges.

Reference: Marinò, Petrini, Malchiodi, Frasca, "Compact representations of convolutional neural
networks via weight pruning and quantization", 2021 (probabilistic weight sharing)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import QuantizeError
from ..kernels import quantize as kq
from .result import (
    Quantized,
    check_k,
    check_levels_available,
    check_weights,
    from_labels,
    kernel_input,
)


def probabilistic(W: Any, k: int, *, seed: int = 0, exact_k: bool = False) -> Quantized:
    """Round each nonzero weight at random to one of the two edges of its interval.

    The k levels are the edges of b = k - 1 intervals placed at the quantiles of the nonzero
    weights (order statistics, so every edge is a weight value and the extremes are the min and
    max). A weight x in [lo, hi] becomes hi with probability (x - lo) / (hi - lo) and lo
    otherwise, so E[q] = x exactly: the quantization is unbiased, at the price of a larger MSE
    than nearest rounding. Each entry draws from a counter-based generator keyed by ``seed``
    and its position: deterministic whatever the number of threads. Zeros stay zero."""
    A = check_weights(W)
    k = check_k(k, minimum=2)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= seed < 1 << 64:
        raise QuantizeError(f"seed must be an integer in [0, 2^64), got {seed!r}")
    xs = np.sort(A[A != 0])
    if exact_k:
        check_levels_available(k, int(np.unique(xs).size), True)
    pos = np.rint(np.linspace(0, max(xs.size - 1, 0), k)).astype(np.int64)
    edges = np.unique(xs[pos]).astype(np.float64) if xs.size else np.zeros(0)
    labels = np.empty(A.shape, np.int32)
    counts = kq.stochastic_assign(kernel_input(A), edges, seed, labels.reshape(-1))
    info = {"seed": int(seed), "intervals": max(int(edges.size) - 1, 0)}
    return from_labels(A, labels, counts, edges, "probabilistic", info)
