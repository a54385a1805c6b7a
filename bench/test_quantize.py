"""Quantizer benchmark: 16M float32 weights (a 4096 x 4096 Gaussian layer, nothing pruned) to
k = 256 levels with every method, after compilation, against numpy references in the same run.

Target (printed, not asserted): k-means and uniform under 2 s."""

from __future__ import annotations

import numpy as np
from conftest import NOTES, interleaved_best

from sparsecodec import quantize as qz

N, K = 4096, 256


def _numpy_uniform(W: np.ndarray, k: int) -> np.ndarray:
    """Uniform quantization in plain numpy (no zero handling): the reference for UQ."""
    lo, hi = float(W.min()), float(W.max())
    step = (hi - lo) / (k - 1)
    idx = np.clip(np.rint((W - lo) / step), 0, k - 1)
    return (lo + idx * step).astype(W.dtype)


def _numpy_lloyd_step(W: np.ndarray, c: np.ndarray) -> np.ndarray:
    """One Lloyd iteration in numpy on the raw weights (assign by midpoints, then means)."""
    flat = W.reshape(-1)
    lab = np.searchsorted(0.5 * (c[:-1] + c[1:]), flat)
    sums = np.bincount(lab, weights=flat, minlength=c.size)
    counts = np.bincount(lab, minlength=c.size)
    return np.where(counts > 0, sums / np.maximum(counts, 1), c)


def test_quantize_16m_k256():
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((N, N)) / np.sqrt(N)).astype(np.float32)
    imp = np.abs(rng.standard_normal(W.shape)).astype(np.float32)
    c0 = np.linspace(float(W.min()), float(W.max()), K)
    lam = qz.ecsq_lambda(W, K, entropy=6.0)
    out: dict[str, qz.Quantized] = {}

    def keep(name, fn):
        def run():
            out[name] = fn()
        return run

    fns = {
        "uniform": keep("uniform", lambda: qz.uniform(W, K)),
        "kmeans (k-means++ init)": keep("kmeans", lambda: qz.kmeans(W, K)),
        "kmeans (linear init)": keep("kmeans_lin", lambda: qz.kmeans(W, K, init="linear")),
        "optimal (DP + polish)": keep("optimal", lambda: qz.optimal_kmeans(W, K)),
        "gwk": keep("gwk", lambda: qz.gwk(W, K, imp)),
        "probabilistic": keep("prob", lambda: qz.probabilistic(W, K)),
        "ecsq (given lambda)": keep("ecsq", lambda: qz.ecsq(W, K, lam=lam)),
        "numpy uniform (reference)": lambda: _numpy_uniform(W, K),
        "numpy Lloyd, ONE iteration (reference)": lambda: _numpy_lloyd_step(W, c0),
        "np.sort of the weights (reference)": lambda: np.sort(W, axis=None),
    }
    best = interleaved_best(fns, rounds=3)
    ref = best["numpy uniform (reference)"]
    lines = [f"{'method':<40}{'seconds':>9}{'/ numpy UQ':>11}{'MSE':>11}{'H bits':>8}  target"]
    keys = ["uniform", "kmeans", "kmeans_lin", "optimal", "gwk", "prob", "ecsq"]
    for (name, t), key in zip(best.items(), keys + [None] * 3, strict=True):
        q = out.get(key) if key else None
        stats = f"{q.mse:11.3e}{q.entropy:8.3f}" if q else " " * 19
        target = ""
        if key in ("uniform", "kmeans", "kmeans_lin"):
            target = "< 2 s: " + ("met" if t < 2 else "MISSED")
        lines.append(f"{name:<40}{t:9.3f}{t / ref:11.2f}{stats}  {target}")
    NOTES["quantize 16M weights, k=256 (best of 3, interleaved)"] = "\n    " + "\n    ".join(lines)
