"""Uniform quantization (UQ): k levels evenly spaced over the range of the nonzero weights,
each weight rounded to the nearest level."""

from __future__ import annotations

from typing import Any

import numpy as np

from .result import Quantized, by_thresholds, check_k, check_levels_available, check_weights


def uniform(W: Any, k: int, *, symmetric: bool = False, exact_k: bool = False) -> Quantized:
    """Round each nonzero weight to the nearest of k evenly spaced levels.

    - asymmetric (default): levels ``linspace(lo, hi, k)`` with lo, hi the smallest and largest
      nonzero weight (k = 1: their midpoint);
    - ``symmetric=True``: levels ``linspace(-a, a, k)`` with a the largest |w| (k >= 2). For odd
      k the middle level is 0: weights rounded to it become zeros (they are pruned too).

    A weight halfway between two levels goes to the lower one. Levels no weight is nearest to
    are not in the codebook. Zeros stay zero. O(n log k), one parallel pass."""
    A = check_weights(W)
    k = check_k(k, minimum=2 if symmetric else 1)
    nz = A[A != 0]
    if exact_k:
        check_levels_available(k, int(np.unique(nz).size), True)
    if nz.size == 0:
        return by_thresholds(A, np.zeros(0), np.zeros(0), "uniform", {"symmetric": symmetric})
    lo, hi = float(nz.min()), float(nz.max())
    if symmetric:
        a = max(-lo, hi)
        levels = np.linspace(-a, a, k)
    elif k == 1:
        levels = np.array([0.5 * (lo + hi)])
    else:
        levels = np.linspace(lo, hi, k)
    info = {"symmetric": symmetric, "step": float(levels[1] - levels[0]) if k > 1 else 0.0}
    levels = np.unique(levels)  # a range narrower than k steps (e.g. one value) collapses
    return by_thresholds(A, 0.5 * (levels[:-1] + levels[1:]), levels, "uniform", info)
