"""Entropy-constrained scalar quantization (ECSQ).

Reference: Chou, Lookabaugh, Gray, "Entropy-constrained vector quantization", IEEE Trans. ASSP
37(1), 1989, applied to scalars: minimise D + lambda * R, with D the squared error and R the
length -log2 p of each level's ideal entropy code."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..coding.information import entropy
from ..errors import QuantizeError
from ..kernels import quantize as kq
from .kmeans import INITS, initial_centroids
from .result import (
    Quantized,
    by_thresholds,
    check_k,
    check_levels_available,
    check_weights,
)
from .sorted_weights import SortedWeights, alternate

_TARGETS = ("entropy", "levels", "mse")


def ecsq(W: Any, k: int = 256, lam: float | None = None, *, entropy: float | None = None,
         levels: int | None = None, mse: float | None = None, init: str = "linear",
         n_iter: int = 300, seed: int = 0, exact_k: bool = False) -> Quantized:
    """Quantize the nonzero weights to at most ``k`` levels minimising, per nonzero weight,
    ``(w - c)^2 + lam * (-log2 p_c)``.

    Starts from ``k`` codewords (``init`` as :func:`kmeans`) with equal code lengths, then
    alternates (1) each weight to the codeword of least cost (in 1-D each codeword wins one
    interval: the lower envelope of the cost parabolas), (2) each codeword to its cell's mean
    and its length to -log2 of its cell's share; codewords that win nothing are dropped, so a
    larger ``lam`` gives fewer, unequally used levels and a lower entropy. Stops when the cells
    no longer change or after ``n_iter`` updates; D + lam R never increases.

    Give ``lam`` (units: squared weight per bit; 0 is Lloyd's k-means without empty-cell
    repair) or one target, and lambda is found by :func:`ecsq_lambda`: ``entropy`` (bits per
    nonzero weight, at most), ``levels`` (at most this many levels) or ``mse`` (at most this
    mean squared error over all entries, the lowest entropy that keeps it). An ``entropy``
    target that only the one-level solution meets (every weight lost) raises
    :class:`QuantizeError` naming the lowest entropy with two levels or more."""
    A = check_weights(W)
    k = check_k(k)
    targets = {"entropy": entropy, "levels": levels, "mse": mse}
    given = {name: v for name, v in targets.items() if v is not None}
    if (lam is None) == (not given) or len(given) > 1:
        raise QuantizeError("give either lam or exactly one of entropy=, levels=, mse=")
    sw = _sorted(A, k, init, exact_k)
    if lam is None:
        lam = _search(A, sw, k, init, n_iter, seed, given)
    elif not np.isfinite(lam) or lam < 0:
        raise QuantizeError(f"lam must be a finite number >= 0, got {lam}")
    if sw.n == 0:
        return by_thresholds(A, np.zeros(0), np.zeros(0), "ecsq", {"lam": float(lam)})
    c0 = initial_centroids(sw, k, init, seed)
    lev, th, iterations, converged = _core(sw, c0, float(lam), n_iter)
    info = {"lam": float(lam), "init": init, "iterations": iterations, "converged": converged}
    return by_thresholds(A, th, lev, "ecsq", info)


def ecsq_lambda(W: Any, k: int = 256, *, entropy: float | None = None,
                levels: int | None = None, mse: float | None = None, init: str = "linear",
                n_iter: int = 300, seed: int = 0) -> float:
    """The lambda that :func:`ecsq` needs to meet one target: the smallest lambda whose
    entropy (bits per nonzero) is at most ``entropy`` or whose level count is at most
    ``levels``, or the largest lambda whose MSE is at most ``mse``. Found by doubling, then
    bisection (about 60 ECSQ runs, each O(k log n) per iteration plus one O(n) pass).
    Raises :class:`QuantizeError` when no lambda meets the target."""
    A = check_weights(W)
    k = check_k(k)
    given = {name: v for name, v in (("entropy", entropy), ("levels", levels), ("mse", mse))
             if v is not None}
    if len(given) != 1:
        raise QuantizeError("give exactly one of entropy=, levels=, mse=")
    return _search(A, _sorted(A, k, init, False), k, init, n_iter, seed, given)


def _sorted(A: np.ndarray, k: int, init: str, exact_k: bool) -> SortedWeights:
    if init not in INITS:
        raise QuantizeError(f"init must be one of {INITS}, got {init!r}")
    sw = SortedWeights(A)
    check_levels_available(k, sw.distinct(), exact_k)
    return sw


def _core(sw: SortedWeights, c0: np.ndarray, lam: float, n_iter: int
          ) -> tuple[np.ndarray, np.ndarray, int, bool]:
    def partition(state: tuple[np.ndarray, np.ndarray]
                  ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        c, ell = state  # levels and their code lengths: the cheapest level wins each value
        act, th = kq.lower_envelope(c, lam * ell)
        return (c[act], ell[act]), th

    def update(state: tuple[np.ndarray, np.ndarray], b: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        count, _, mean = sw.stats(b)
        keep = count > 0
        return mean[keep], -np.log2(count[keep] / sw.n)

    c = np.unique(c0)
    (c, ell), th, its, converged = alternate(
        sw, (c, np.full(c.size, np.log2(max(c.size, 1)))), partition, update, n_iter)
    if th is None:
        (c, _), th = partition((c, ell))
    return c, th, its, converged


def _measure(A: np.ndarray, sw: SortedWeights, c0: np.ndarray, lam: float, n_iter: int
             ) -> dict[str, float]:
    lev, th, _, _ = _core(sw, c0, lam, n_iter)
    b = sw.bounds(th)
    a0, a1, a2 = sw.moments(b)
    n, s1, s2 = np.diff(a0), np.diff(a1), np.diff(a2)
    d = lev - sw.center
    sse = float(np.maximum(s2 - 2 * d * s1 + d * d * n, 0.0).sum())
    return {"entropy": entropy(n), "levels": float(lev.size), "mse": sse / max(A.size, 1)}


def _search(A: np.ndarray, sw: SortedWeights, k: int, init: str, n_iter: int, seed: int,
            given: dict[str, Any]) -> float:
    (name, target), = given.items()
    if not np.isfinite(target) or target < 0:
        raise QuantizeError(f"{name} target must be a finite number >= 0, got {target}")
    if sw.n == 0:
        return 0.0
    c0 = initial_centroids(sw, k, init, seed)

    def ok(lam: float) -> bool:
        return _measure(A, sw, c0, lam, n_iter)[name] <= target

    if name == "mse":  # ok at small lambda: find the largest lambda still ok
        if not ok(0.0):
            raise QuantizeError(f"mse={target} is below what {k} levels reach even at lambda=0; "
                                "raise k")
        good, bad = 0.0, _scale(sw)
        while ok(bad):
            good, bad = bad, bad * 2
            if bad > 1e300:
                return good
    else:  # ok at large lambda: find the smallest lambda that is ok
        if ok(0.0):
            return 0.0
        bad, good = 0.0, _scale(sw)
        steps = 0
        while not ok(good):
            bad, good = good, good * 2
            steps += 1
            if steps > 200:
                raise QuantizeError(f"no lambda brings the {name} down to {target}")
    for _ in range(50):
        mid = 0.5 * (good + bad)
        if ok(mid):
            good = mid
        else:
            bad = mid
    if name == "entropy" and target > 0:
        got, near = _measure(A, sw, c0, good, n_iter), _measure(A, sw, c0, bad, n_iter)
        if got["levels"] <= 1 < near["levels"]:
            raise QuantizeError(
                f"entropy={target}: ECSQ has no solution between 0 bits per nonzero (one "
                f"level: every weight lost) and {near['entropy']:.3f} bits "
                f"({near['levels']:.0f} levels) on these weights; ask for at least "
                f"{near['entropy']:.3f}, or prune more (a pruned layer's nonzeros often lie in "
                "two equal lobes away from 0: two levels cost one bit, one level loses all)")
    return float(good)


def _scale(sw: SortedWeights) -> float:
    """A lambda of the order of the weights' variance, where the search starts."""
    a0, a1, a2 = sw.moments(np.array([0, sw.n], np.int64))
    var = float(a2[1] / a0[1] - (a1[1] / a0[1]) ** 2)
    return var if var > 0 else 1.0
