"""Weight sharing by 1-D k-means (CWS, as in Deep Compression), its gradient-weighted variant
(GWK), the exact optimal 1-D k-means, and the cumulative-gradient rule for fine-tuning shared
values.

References: Han, Mao, Dally, "Deep Compression", ICLR 2016 (weight sharing, linear / density
initialisation, centroid gradients); Sakthi, Yadla, Pawate, "Deep learning model compression
using network sensitivity and gradients", 2022 (GWK); Wang and Song, "Ckmeans.1d.dp: optimal
k-means clustering in one dimension by dynamic programming", R Journal 2011 (the DP)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DTypeError, QuantizeError, ShapeError
from ..kernels import quantize as kq
from .result import (
    Quantized,
    by_thresholds,
    check_k,
    check_levels_available,
    check_like,
    check_weights,
)
from .sorted_weights import SortedWeights, alternate

INITS = ("linear", "density", "kmeans++")
DEFAULT_MAX_POINTS = 1 << 14


def kmeans(W: Any, k: int, *, init: str = "kmeans++", n_iter: int = 1000, seed: int = 0,
           importance: Any = None, exact_k: bool = False,
           max_points: int = DEFAULT_MAX_POINTS) -> Quantized:
    """Share at most ``k`` values among the nonzero weights by Lloyd's 1-D k-means.

    ``init``: ``"kmeans++"`` (default: D^2 sampling under ``seed``, on at most ``max_points``
    groups of sorted weights), ``"linear"`` (k centroids evenly spaced over [min, max], Deep
    Compression's choice: it keeps levels for the rare large weights, but Lloyd's iterations
    crawl from it and stop far from the least MSE) or ``"density"`` (at the (i + 1/2)/k
    quantiles). Iterates until the cells no longer change or ``n_iter`` updates; each update
    costs O(k log n) on the sorted weights (about 0.1 ms for k = 256). An empty cell is moved
    to the point farthest from its centroid. With ``importance`` (nonnegative, W's shape) the
    centroids are importance-weighted means: see :func:`gwk`. When the weights have at most k
    distinct nonzero values each gets its own level (MSE 0). ``exact_k`` makes k > (distinct
    nonzero values) an error. Zeros are pruned weights and stay zero. Deterministic for a given
    seed."""
    A = check_weights(W)
    k = check_k(k)
    if init not in INITS:
        raise QuantizeError(f"init must be one of {INITS}, got {init!r}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise QuantizeError(f"n_iter must be a nonnegative integer, got {n_iter!r}")
    imp = _importance(A, importance)
    sw = SortedWeights(A, imp)
    method = "kmeans" if imp is None else "gwk"
    done = _few_distinct(A, sw, k, exact_k, method)
    if done is not None:
        return done
    c = initial_centroids(sw, k, init, seed, max_points)
    levels, thresholds, iterations, converged = lloyd(sw, c, n_iter)
    info: dict[str, Any] = {"init": init, "iterations": iterations, "converged": converged}
    q = by_thresholds(A, thresholds, levels, method, info)
    if imp is not None:
        q.info["weighted_mse"] = weighted_mse(A, q.values, imp)
    return q


def gwk(W: Any, k: int, importance: Any, **options: Any) -> Quantized:
    """Gradient-weighted k-means (GWK, Sakthi et al. 2022): k-means whose centroid update is
    the importance-weighted mean of its cell, c_l = sum_i s_i w_i / sum_i s_i, so that centroids
    move towards the weights the loss is most sensitive to; cells stay nearest-centroid.

    ``importance`` s has W's shape and is nonnegative: the magnitude of the loss gradient
    (``np.abs(grad)``) as in the paper, or any sensitivity computed in the user's framework. A
    cell whose importance is all zero falls back to its plain mean. This minimises
    sum_i s_i (w_i - q_i)^2, reported as ``info["weighted_mse"]`` (divided by the entry count).
    Other options as :func:`kmeans`."""
    if importance is None:
        raise QuantizeError("gwk needs an importance array (e.g. np.abs(grad))")
    return kmeans(W, k, importance=importance, **options)


def optimal_kmeans(W: Any, k: int, *, importance: Any = None, exact_k: bool = False,
                   max_points: int | None = None, n_iter: int = 1000) -> Quantized:
    """The optimal 1-D k-means of the nonzero weights, by dynamic programming.

    In one dimension optimal clusters are runs of the sorted values, so the DP over the sorted
    distinct values (each weighted by its count, or by its importance sum) finds the global
    minimum of the (importance-weighted) squared error: then ``info["exact"]`` is True.

    The DP costs O(k P log P) time and 4 k P bytes for P points, so when the weights have more
    than ``max_points`` distinct values (default: as many as keep that table at 64 MiB, 2^24 / k
    and at most 2^20) they are cut into ``max_points`` runs of about equal count, never
    splitting a value; the DP then finds the best clustering that keeps each run whole
    (``info["grouped_objective"]``) and Lloyd's iterations (at most ``n_iter``) polish it on
    the full data. ``info["exact"]`` is then False: the result is a near-optimum, not a
    certificate."""
    A = check_weights(W)
    k = check_k(k)
    if max_points is None:
        max_points = max(1, min(1 << 20, (1 << 24) // k))
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or \
            not 1 <= max_points <= 1 << 24:
        raise QuantizeError(f"max_points must be an integer in [1, 2^24], got {max_points!r}")
    if k * max_points > 1 << 28:
        raise QuantizeError(f"k * max_points = {k * max_points} exceeds 2^28: the DP's "
                            "backtracking table would need over 1 GiB; lower max_points")
    imp = _importance(A, importance)
    sw = SortedWeights(A, imp)
    done = _few_distinct(A, sw, k, exact_k, "optimal")
    if done is not None:
        return done
    cuts, exact = sw.groups(max_points)
    a0, a1, a2 = sw.moments(cuts)
    part, objective = kq.optimal_partition(a0, a1, a2, k)
    bounds = cuts[part]
    _, _, mean = sw.stats(bounds)
    info: dict[str, Any] = {"exact": exact, "points": int(cuts.size - 1)}
    if exact:
        thresholds = sw.xs[bounds[1:-1] - 1].astype(np.float64)
        info["objective"] = float(objective)
    else:
        mean, thresholds, iterations, _ = lloyd(sw, mean, n_iter)
        info.update(grouped_objective=float(objective), iterations=iterations)
    q = by_thresholds(A, thresholds, mean, "optimal", info)
    if imp is not None:
        q.info["weighted_mse"] = weighted_mse(A, q.values, imp)
    return q


def centroid_gradients(grad: Any, labels: Any, k: int) -> np.ndarray:
    """The gradient of the loss with respect to each shared value: dL/dc_l = sum of dL/dw over
    the weights in cluster l (Deep Compression's cumulative rule). ``labels`` as in
    :class:`Quantized` (-1: pruned, ignored); returns float64 of length ``k``, so a training
    loop can update ``codebook -= lr * centroid_gradients(grad, q.labels, q.k)``."""
    k = check_k(k)
    L = np.asarray(labels)
    if L.dtype.kind not in "iu":
        raise DTypeError(f"labels must be integers, got {L.dtype}")
    G = np.asarray(grad)
    if G.shape != L.shape:
        raise ShapeError(f"grad must have the labels' shape {L.shape}, got {G.shape}")
    G = check_like(L, G, "grad")
    keep = L >= 0
    sel = L[keep]
    if sel.size and int(sel.max()) >= k:
        raise QuantizeError(f"labels go up to {int(sel.max())}, beyond k={k} clusters")
    if (L < -1).any():
        raise QuantizeError("labels below -1 are not cluster labels")
    return np.bincount(sel, weights=G[keep], minlength=k)


def weighted_mse(W: np.ndarray, values: np.ndarray, importance: np.ndarray) -> float:
    d = W.astype(np.float64) - values.astype(np.float64)
    return float((importance * d * d).sum() / max(W.size, 1))


def initial_centroids(sw: SortedWeights, k: int, init: str, seed: int,
                      max_points: int = DEFAULT_MAX_POINTS) -> np.ndarray:
    """k starting centroids (float64, ascending, possibly repeated) for the sorted weights."""
    xs = sw.xs
    if init == "linear":
        return np.linspace(float(xs[0]), float(xs[-1]), k)
    if init == "density":
        return xs[sw.quantile_positions((np.arange(k) + 0.5) / k)].astype(np.float64)
    rng = np.random.default_rng(seed)
    cuts, _ = sw.groups(max_points)
    a0, a1, _ = sw.moments(cuts)
    gw = np.diff(a0)
    with np.errstate(invalid="ignore", divide="ignore"):
        gx = np.where(gw > 0, np.diff(a1) / gw, 0.0) + sw.center
    if not (gw > 0).any():
        return np.linspace(float(xs[0]), float(xs[-1]), k)
    chosen = [gx[_draw(rng, gw)]]
    d2 = (gx - chosen[0]) ** 2
    for _ in range(k - 1):
        p = gw * d2
        if p.sum() <= 0:
            break
        c = gx[_draw(rng, p)]
        chosen.append(c)
        np.minimum(d2, (gx - c) ** 2, out=d2)
    return np.sort(np.array(chosen, np.float64))


def _draw(rng: np.random.Generator, p: np.ndarray) -> int:
    cum = np.cumsum(p)
    return int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), p.size - 1))


def lloyd(sw: SortedWeights, c: np.ndarray, n_iter: int
          ) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Lloyd's iterations on the sorted weights from centroids ``c``. Returns the levels, the
    thresholds between them (midpoints), the number of updates and whether the cells reached a
    fixed point."""
    def update(c: np.ndarray, b: np.ndarray) -> np.ndarray:
        count, _, mean = sw.stats(b)
        return _repair(sw, b, count, mean)

    c, th, its, converged = alternate(sw, np.sort(np.asarray(c, np.float64)),
                                      lambda c: (c, 0.5 * (c[:-1] + c[1:])), update, n_iter)
    return c, 0.5 * (c[:-1] + c[1:]) if th is None else th, its, converged


def _repair(sw: SortedWeights, b: np.ndarray, count: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Centroids for the next iteration: the cell means, each empty cell's centroid moved to the
    sorted value farthest from its own cell's mean (dropped when every cell is one value)."""
    empty = np.flatnonzero(count == 0)
    if empty.size == 0:
        return mean
    c = mean.copy()
    full = count > 0
    lo = np.where(full, sw.xs[np.minimum(b[:-1], sw.n - 1)], 0.0)
    hi = np.where(full, sw.xs[np.maximum(b[1:] - 1, 0)], 0.0)
    far_lo = np.where(full, mean - lo, -np.inf)
    far_hi = np.where(full, hi - mean, -np.inf)
    for e in empty:
        j_lo = int(np.argmax(far_lo))
        j_hi = int(np.argmax(far_hi))
        if max(far_lo[j_lo], far_hi[j_hi]) <= 0:
            c[e] = np.nan
        elif far_lo[j_lo] >= far_hi[j_hi]:
            c[e] = lo[j_lo]
            far_lo[j_lo] = -np.inf
        else:
            c[e] = hi[j_hi]
            far_hi[j_hi] = -np.inf
    return np.sort(c[~np.isnan(c)])


def _importance(A: np.ndarray, importance: Any) -> np.ndarray | None:
    if importance is None:
        return None
    imp = check_like(A, importance, "importance")
    if (imp < 0).any():
        raise QuantizeError("importance must be nonnegative (pass np.abs(grad) for gradients)")
    return imp


def _few_distinct(A: np.ndarray, sw: SortedWeights, k: int, exact_k: bool,
                  method: str) -> Quantized | None:
    """When the nonzero weights take at most k values, each keeps its own level (exact)."""
    distinct = sw.distinct()  # counted first: listing millions of run starts costs 16 B each
    check_levels_available(k, distinct, exact_k)
    if distinct > k:
        return None
    starts = sw.run_starts()
    levels = sw.xs[starts].astype(np.float64)
    thresholds = sw.xs[starts[1:] - 1].astype(np.float64)
    return by_thresholds(A, thresholds, levels, method, {"exact": True, "iterations": 0,
                                                         "converged": True})
