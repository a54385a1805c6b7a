"""Built-in example matrices, made on the fly (no data is downloaded or shipped)."""

from __future__ import annotations

import numpy as np


def pruned_quantized_layer(n: int = 2048, m: int = 2048, density: float = 0.10, levels: int = 32,
                           seed: int = 0, dtype: type = np.float32) -> np.ndarray:
    """A realistic pruned + quantized weight matrix of shape (n, m).

    Gaussian weights (std 1/sqrt(n), as after a common initialisation), magnitude-pruned so that
    a fraction ``density`` survives, the survivors quantized to ``levels`` values: equal-mass
    bins over the surviving weights, each replaced by its bin mean (one k-means-like step).
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n, m)) / np.sqrt(max(n, 1))).astype(dtype)
    keep = int(round(density * W.size))
    flat = W.reshape(-1)
    if keep < W.size:
        cut = np.argpartition(np.abs(flat), W.size - keep)[: W.size - keep]
        flat[cut] = 0
    nz = np.flatnonzero(flat)
    if nz.size:
        order = nz[np.argsort(flat[nz], kind="stable")]
        bins = np.array_split(order, min(levels, nz.size))
        for b in bins:
            flat[b] = flat[b].mean(dtype=np.float64)
    return W
