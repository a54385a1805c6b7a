"""Entropy limits and space bounds (the zero-order entropy for now; the occupancy formulas of
the sHAM papers come with the bounds issue)."""

from __future__ import annotations

import numpy as np

from .formats.base import Matrix


def entropy_h0(W: np.ndarray | Matrix, nonzero_only: bool = False) -> float:
    """Zero-order empirical entropy, in bits per entry, of the entries' bit patterns.

    With ``nonzero_only`` the entropy of the nonzero entries alone (bits per nonzero). No
    zero-order code, Huffman included, stores the entries in fewer than ``H0 * count`` bits.
    """
    M = W if isinstance(W, Matrix) else Matrix(W)
    d = M.nonzero_distinct if nonzero_only else M.all_distinct
    if d is None:  # more distinct values than a codebook holds: count them the slow way
        bits = M.csc[2] if nonzero_only else M.bits.ravel()
        _, counts = np.unique(bits, return_counts=True)
    else:
        counts = d.counts
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts / total
    return float(-(p * np.log2(p)).sum())
