"""Pruning: magnitude pruning per layer or across layers at one threshold, and N:M structured
sparsity. Each returns the pruned weights (same dtype and shape, pruned entries +0.0) and the
mask of kept entries.

Reference: Han, Pool, Tran, Dally, "Learning both weights and connections for efficient neural
networks", NeurIPS 2015 (magnitude pruning); Mishra et al., "Accelerating sparse deep neural
networks", 2021 (2:4 structured sparsity)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..errors import QuantizeError, ShapeError
from .result import check_weights


class Pruned(NamedTuple):
    """``weights``: the pruned array (a new array); ``mask``: bool, True where kept."""

    weights: np.ndarray
    mask: np.ndarray


def prune(W: Any, p: float) -> Pruned:
    """Magnitude pruning of one layer: zero the ``round(p / 100 * W.size)`` entries of smallest
    |w| (those at or below the p-th percentile of |W|), keep the rest. Ties at the threshold
    are broken by position (row-major), so exactly that many entries are pruned and the result
    is deterministic. Entries already zero count among the pruned. ``p`` in [0, 100]."""
    A = check_weights(W)
    cut = _count(p, A.size)
    keep = np.ones(A.size, bool)
    _prune_smallest([A.reshape(-1)], [keep], cut)
    return _apply(A, keep)


def global_prune(layers: Mapping[str, Any], p: float) -> dict[str, Pruned]:
    """Magnitude pruning across layers at one threshold: the ``round(p / 100 * total)`` entries
    of smallest |w| among all layers are zeroed, so layers with small weights lose more (ties
    broken by layer order, then position). Returns a dict with the same keys."""
    if not isinstance(layers, Mapping):
        raise QuantizeError(f"layers must be a mapping name -> array, got {type(layers).__name__}")
    arrays = {name: check_weights(W, name=f"layer {name!r}") for name, W in layers.items()}
    total = sum(A.size for A in arrays.values())
    cut = _count(p, total)
    keeps = [np.ones(A.size, bool) for A in arrays.values()]
    _prune_smallest([A.reshape(-1) for A in arrays.values()], keeps, cut)
    return {name: _apply(A, keep) for (name, A), keep in zip(arrays.items(), keeps, strict=True)}


def nm_prune(W: Any, n: int = 2, m: int = 4, axis: int = 0) -> Pruned:
    """N:M structured sparsity: in every group of ``m`` consecutive entries along ``axis`` keep
    the ``n`` of largest |w| (ties: the earlier ones). With our convention W is (inputs,
    outputs), so the default axis 0 groups along the input dimension, as sparse tensor cores
    require (2:4). W.shape[axis] must be a multiple of m."""
    A = check_weights(W)
    for name, v in (("n", n), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise QuantizeError(f"{name} must be an integer, got {v!r}")
    if not 0 <= n <= m or m < 1:
        raise QuantizeError(f"need 0 <= n <= m and m >= 1, got n={n}, m={m}")
    if A.ndim == 0:
        raise ShapeError("nm_prune needs an array with at least one dimension")
    if not -A.ndim <= axis < A.ndim:
        raise ShapeError(f"axis {axis} out of range for {A.ndim}-D weights")
    if A.shape[axis] % m:
        raise ShapeError(f"W.shape[{axis}] = {A.shape[axis]} is not a multiple of m={m}")
    moved = np.moveaxis(np.abs(A), axis, -1)
    groups = moved.reshape(-1, m)
    order = np.argsort(-groups, axis=1, kind="stable")
    keep_g = np.zeros(groups.shape, bool)
    np.put_along_axis(keep_g, order[:, :n], True, axis=1)
    keep = np.moveaxis(keep_g.reshape(moved.shape), -1, axis)
    return _apply(A, keep.reshape(-1))


def _count(p: Any, size: int) -> int:
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or \
            not 0 <= p <= 100:
        raise QuantizeError(f"p must be a percentage in [0, 100], got {p!r}")
    return int(np.floor(float(p) / 100 * size + 0.5))


def _prune_smallest(arrays: list[np.ndarray], keeps: list[np.ndarray], cut: int) -> None:
    """Clear ``keeps`` for the ``cut`` smallest magnitudes over all ``arrays`` (flat, in
    order).

    The threshold comes from an in-place partition of the magnitudes in their common dtype
    (exact: float16 and float32 magnitudes compare exactly as float32); the masks then take
    the magnitudes of one array at a time again. The scratch is one copy of the magnitudes,
    not a sort's int64 indices."""
    if cut == 0:
        return
    dtype = np.result_type(*arrays)
    joined = (np.abs(arrays[0]).astype(dtype, copy=False) if len(arrays) == 1
              else np.concatenate([np.abs(a).astype(dtype, copy=False) for a in arrays]))
    joined.partition(cut - 1)
    kth = joined[cut - 1]
    del joined
    left = cut
    for a in arrays:
        left -= int(np.count_nonzero(np.abs(a) < kth))
    for a, keep in zip(arrays, keeps, strict=True):
        mag = np.abs(a)
        keep[mag < kth] = False
        if left > 0:
            ties = np.flatnonzero(mag == kth)[:left]
            keep[ties] = False
            left -= ties.size
        del mag


def _apply(A: np.ndarray, keep: np.ndarray) -> Pruned:
    mask = keep.reshape(A.shape)
    out = np.where(mask, A, A.dtype.type(0))
    return Pruned(out, mask)
