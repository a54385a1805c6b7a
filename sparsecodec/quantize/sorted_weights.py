"""The nonzero weights sorted once, with prefix sums, so that the clustering quantizers
(k-means, GWK, ECSQ, the exact DP) never touch the n weights inside their iterations.

In 1-D every nearest-centroid (or entropy-constrained) cell is an interval, so a clustering is
a list of thresholds; the cells' counts and means then cost one binary search and two prefix-sum
lookups each: an iteration is O(k log n) instead of O(n k)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..kernels import quantize as kq
from .result import kernel_input

_EMPTY = np.empty(0, np.float64)


class SortedWeights:
    """Sorted nonzero entries of W (``xs``), optional importance carried along (``ws``)."""

    def __init__(self, W: np.ndarray, importance: np.ndarray | None = None) -> None:
        flat = kernel_input(W)
        nz = flat != 0
        v = flat[nz]
        del flat  # each temporary goes as soon as the next exists: a float64 copy of the
        self.n = int(v.size)  # weights costs 8 bytes each, and the prefix sums 8 more
        if importance is None:
            del nz
            v.sort()
            self.xs = v
            self.ws = _EMPTY
        else:
            self.xs, self.ws = _sort_with(v, importance.reshape(-1)[nz])
            del nz
            if not self.ws.any():  # no weight matters more than another: plain k-means
                self.ws = _EMPTY
        del v
        self.center = float(self.xs.mean(dtype=np.float64)) if self.n else 0.0
        _, self._s1 = kq.prefix_sums(self.xs, _EMPTY, self.center)
        self._w0: np.ndarray
        self._w1: np.ndarray
        self._w0, self._w1 = (kq.prefix_sums(self.xs, self.ws, self.center) if self.weighted
                              else (_EMPTY, _EMPTY))

    @property
    def weighted(self) -> bool:
        return self.ws.shape[0] > 0

    def bounds(self, thresholds: np.ndarray) -> np.ndarray:
        """Cell boundaries in the sorted order: [0, #xs <= t_0, #xs <= t_1, ..., n]."""
        pos = kq.count_le(self.xs, np.ascontiguousarray(thresholds, np.float64))
        return np.concatenate(([0], pos, [self.n])).astype(np.int64)

    def stats(self, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per cell: entry count, weight (importance sum, or the count) and (weighted) mean; the
        mean of an empty cell is NaN, and a cell whose importance is all zero gets its plain
        mean."""
        count = np.diff(bounds)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.diff(self._s1[bounds]) / count + self.center
            if not self.weighted:
                return count, count.astype(np.float64), mean
            weight = np.diff(self._w0[bounds])
            wmean = np.diff(self._w1[bounds]) / weight + self.center
        return count, weight, np.where(weight > 0, wmean, mean)

    def total_weight(self) -> float:
        return float(self._w0[-1]) if self.weighted else float(self.n)

    def quantile_positions(self, q: np.ndarray) -> np.ndarray:
        """Positions in ``xs`` of the q-quantiles (of the importance mass when weighted)."""
        if not self.weighted:
            return np.minimum((q * self.n).astype(np.int64), self.n - 1)
        return np.minimum(np.searchsorted(self._w0[1:], q * self._w0[-1]), self.n - 1)

    def distinct(self) -> int:
        """How many distinct values ``xs`` holds (without listing where each starts)."""
        return int(self.n > 0) + int(np.count_nonzero(self.xs[1:] != self.xs[:-1]))

    def run_starts(self) -> np.ndarray:
        """Positions where a new distinct value starts in ``xs``."""
        if self.n == 0:
            return np.zeros(0, np.int64)
        return np.concatenate(([0], np.flatnonzero(self.xs[1:] != self.xs[:-1]) + 1))

    def groups(self, max_points: int) -> tuple[np.ndarray, bool]:
        """Cut positions (first 0, last n) splitting ``xs`` into at most ``max_points`` runs that
        never split equal values: one run per distinct value when there are few enough (then
        ``exact`` is True). Otherwise half the cuts are at equal counts and half at equal
        widths of the value range: equal counts alone would leave the sparse tails in a few
        wide runs, exactly where a good quantizer puts levels densest relative to the data."""
        if self.distinct() <= max_points:
            return np.append(self.run_starts(), self.n).astype(np.int64), True
        half = max(max_points // 2, 1)
        by_count = np.linspace(0, self.n, half + 1)[1:-1].astype(np.int64)
        edges = np.linspace(float(self.xs[0]), float(self.xs[-1]), max_points - half + 1)[1:-1]
        by_width = kq.count_le(self.xs, edges)
        targets = np.concatenate((by_count, by_width))
        cuts = np.unique(np.concatenate(([0], self._snap(targets), [self.n])))
        return cuts.astype(np.int64), False

    def _snap(self, targets: np.ndarray) -> np.ndarray:
        """Each target position moved to the first run start at or after it (the last run's
        start when there is none), found by binary search in ``xs`` itself: listing every run
        start would cost 16 bytes per distinct value, and unquantized weights are all distinct."""
        xs, n = self.xs, self.n
        last = int(np.searchsorted(xs, xs[-1], side="left"))
        t = np.minimum(np.asarray(targets, np.int64), n - 1)
        starts_here = (t == 0) | (xs[t] != xs[np.maximum(t - 1, 0)])
        after = np.where(starts_here, t, np.searchsorted(xs, xs[t], side="right"))
        return np.where((after >= n) | (np.asarray(targets) >= n), last, after)

    def moments(self, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prefix weight, first and second moments (about ``center``) at ``cuts``."""
        return kq.sums_at(self.xs, self.ws, self.center, cuts)


def alternate(sw: SortedWeights, state: Any, partition: Callable[[Any], tuple[Any, np.ndarray]],
              update: Callable[[Any, np.ndarray], Any], n_iter: int
              ) -> tuple[Any, np.ndarray | None, int, bool]:
    """Alternate ``partition`` (state -> (state, thresholds)) and ``update`` (state, cell
    bounds -> state) at most ``n_iter`` times, stopping when the cells repeat. Returns (state,
    the last thresholds or None when not converged, the number of updates, converged): the
    loop of Lloyd's k-means and of entropy-constrained quantization."""
    prev = None
    for it in range(n_iter + 1):
        state, th = partition(state)
        b = sw.bounds(th)
        if prev is not None and np.array_equal(b, prev):
            return state, th, it, True
        if it == n_iter:
            break
        state = update(state, b)
        prev = b
    return state, None, n_iter, False


def _sort_with(v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``v`` sorted and ``w`` in the same order. For float32 one sort of packed
    (value, position) keys, several times faster than ``argsort`` plus two gathers."""
    w = np.ascontiguousarray(w, np.float64)
    if v.dtype == np.float32 and v.size < 1 << 32:
        width = 32
        ubits = np.uint32
        keys = np.sort(kq.pack_keys(v.view(ubits), width))
        xs = np.empty(v.size, ubits)
        ws = np.empty(v.size, np.float64)
        kq.unpack_keys(keys, width, xs, w, ws)
        return xs.view(v.dtype), ws
    order = np.argsort(v, kind="stable")
    return kq.gather(v, order), kq.gather(w, order)
