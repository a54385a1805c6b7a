"""Built-in example matrices, made on the fly (no data is downloaded or shipped)."""

from __future__ import annotations

import numpy as np


def pruned_quantized_layer(n: int = 2048, m: int = 2048, density: float = 0.10, levels: int = 32,
                           seed: int = 0, dtype: type = np.float32,
                           spacing: str = "equal_mass") -> np.ndarray:
    """A realistic pruned + quantized weight matrix of shape (n, m).

    Gaussian weights (std 1/sqrt(n), as after a common initialisation), magnitude-pruned so that
    a fraction ``density`` survives, the survivors quantized to ``levels`` values, each bin
    replaced by its mean:

    - ``spacing="equal_mass"``: bins holding equally many weights (quantile bins), so the
      values are equally likely and a Huffman code of them is close to fixed-width;
    - ``spacing="uniform"``: bins of equal width over the surviving range, so the counts follow
      the weights' density (skewed, as with k-means codebooks) and codes vary in length.
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"density must be in [0, 1], got {density}")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if spacing not in ("equal_mass", "uniform"):
        raise ValueError(f"spacing must be 'equal_mass' or 'uniform', got {spacing!r}")
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n, m)) / np.sqrt(max(n, 1))).astype(dtype)
    keep = int(round(density * W.size))
    flat = W.reshape(-1)
    if keep < W.size:
        cut = np.argpartition(np.abs(flat), W.size - keep)[: W.size - keep]
        flat[cut] = 0
    nz = np.flatnonzero(flat)
    if nz.size and spacing == "equal_mass":
        order = nz[np.argsort(flat[nz], kind="stable")]
        for b in np.array_split(order, min(levels, nz.size)):
            flat[b] = flat[b].mean(dtype=np.float64)
    elif nz.size:
        v = flat[nz].astype(np.float64)
        edges = np.linspace(v.min(), v.max(), levels + 1)
        which = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, levels - 1)
        sums = np.bincount(which, weights=v, minlength=levels)
        counts = np.bincount(which, minlength=levels)
        means = sums / np.maximum(counts, 1)
        flat[nz] = means[which]
    return W
