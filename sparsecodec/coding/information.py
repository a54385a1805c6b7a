"""The one entropy helper: the information in a histogram of symbol counts."""

from __future__ import annotations

import numpy as np
from numba import njit


def information_bits(counts: np.ndarray) -> float:
    """Bits of the symbols counted by ``counts`` coded with their own exact distribution:
    sum c log2(N / c), N the total. No zero-order code of them is shorter."""
    c = np.asarray(counts)
    c = c[c > 0].astype(np.float64)
    return float(max(0.0, -(c * np.log2(c / c.sum())).sum())) if c.size else 0.0


def entropy(counts: np.ndarray) -> float:
    """Zero-order entropy in bits per symbol: :func:`information_bits` over the count."""
    total = float(np.asarray(counts)[np.asarray(counts) > 0].sum())
    return information_bits(counts) / total if total else 0.0


@njit(cache=True, nogil=True)
def counts_information(counts):
    """:func:`information_bits` for numba kernels (int64 counts)."""
    total = 0
    for c in counts:
        total += c
    bits = 0.0
    for c in counts:
        if c > 0:
            bits -= c * np.log2(c / total)
    return max(0.0, bits)
