"""``sc.compress``: the smallest exact encoding of a layer within an error you can accept
(or the lowest error within a size), searching the quantizer and the format together.

The error is relative: ``||W - Q||_F / ||W||_F``, or with ``importance`` (h >= 0, W's shape:
a diagonal Hessian, squared gradients, activation second moments) ``sqrt(sum h (w - q)^2 /
sum h w^2)``. Zeros of W stay zeros, and every other entry may become one.

The search, per quantizer family, bisects the family's one knob (30 steps at most, each an
O(n) quantization and an error measure; with ``bits_per_weight`` each step also sizes the
result exactly, ``api.candidate_sizes``):

- ``uniform``: every weight rounded to the nearest multiple of a step (zero included), the
  grid NNCodec's uniform quantizer uses; knob: the step.
- ``ecsq``: entropy-constrained levels (``quantize.ecsq``, at most 256); knob: lambda.
- ``kmeans``: k-means levels, weighted by ``importance`` when given (GWK,
  ``quantize.kmeans(..., importance=)``); knob: the number of levels, 1 to 256.
- ``dependent``: trellis-coded quantization (``quantize.dependent``: two interleaved grids
  of one step and a 4-state machine, a Viterbi search per column with the bits of
  ``sham_ans``'s state contexts, weighted by ``importance``); knob: the step. Three Viterbi
  passes per step: the dearest family, about 0.12 s per step on a 384 x 1536 layer.

The best result of each family is encoded with ``format`` (``auto``: the smallest), and the
smallest encoding wins. What it does not do yet: rate decisions made with every context of
the stored format (the trellis sees the state contexts only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .api import candidate_sizes, encode
from .errors import OptionError, QuantizeError
from .formats.base import Encoded, Matrix, check_matrix
from .options import OBJECTIVES
from .quantize import ecsq, kmeans
from .quantize.dependent import dependent

FAMILIES = ("uniform", "ecsq", "kmeans", "dependent")
STEPS = 30  # bisection steps per family


def check_target(what: str, value: Any) -> float:
    """``value`` as a float when it is a finite number >= 0, else :class:`OptionError`
    saying ``what`` it is (``compress`` and ``pack --max-error/--bits`` both ask)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < 0:
        raise OptionError(f"{what} must be a finite number >= 0, found {value!r}")
    return float(value)


def _error_of(W: np.ndarray, h: np.ndarray | None) -> Callable[[np.ndarray], float]:
    """The (weighted) relative error of an approximation of ``W``; 0 for an all-zero W."""
    W64 = W.astype(np.float64)
    hw = W64 if h is None else np.sqrt(h) * W64
    norm = float(np.linalg.norm(hw))

    def error(Q: np.ndarray) -> float:
        d = Q.astype(np.float64) - W64
        if h is not None:
            d *= np.sqrt(h)
        return float(np.linalg.norm(d)) / norm if norm else 0.0

    return error


def _uniform(W: np.ndarray) -> Callable[[float], np.ndarray]:
    def at(step: float) -> np.ndarray:
        Q = (np.round(W.astype(np.float64) / step) * step).astype(W.dtype)
        return Q + W.dtype.type(0)  # -0.0 (a small negative weight rounded away) is +0.0

    return at


def _ecsq(W: np.ndarray) -> Callable[[float], np.ndarray]:
    def at(lam: float) -> np.ndarray:
        return ecsq(W, 256, lam=lam).values

    return at


def _dependent(W: np.ndarray, h: np.ndarray | None) -> Callable[[float], np.ndarray]:
    def at(step: float) -> np.ndarray:
        return dependent(W, step, importance=h).values

    return at


def _kmeans(W: np.ndarray, h: np.ndarray | None) -> Callable[[float], np.ndarray]:
    def at(levels: float) -> np.ndarray:
        k = max(1, int(round(-levels)))  # the knob grows as levels fall
        return kmeans(W, k, importance=h, max_points=1 << 30).values

    return at


def _knob_range(W: np.ndarray, family: str) -> tuple[float, float]:
    """(fine, coarse) ends of a family's knob: error about 0 at the first, 1 at the second."""
    a = np.abs(W[W != 0]).astype(np.float64)
    top = float(a.max()) if a.size else 1.0
    if family == "uniform":
        return top * 2.0 ** -30, 4 * top
    if family == "dependent":  # levels up to 2^19 at the fine end (the trellis allows 2^20)
        return top * 2.0 ** -19, 4 * top
    if family == "kmeans":
        return -256.0, -1.0  # minus the number of levels
    return 0.0, 16 * top * top  # lambda, in squared weight per bit


def _search(W: np.ndarray, family: str, fits: Callable[[np.ndarray], bool], finest: bool,
            h: np.ndarray | None = None) -> np.ndarray | None:
    """Bisection on a family's knob (in log scale for the step) for the result that ``fits``:
    the coarsest such setting when the fine end fits (an error target), the finest when the
    coarse end fits (a size budget, ``finest``). None when the end that should fit does not."""
    makers: dict[str, Callable[[np.ndarray], Callable[[float], np.ndarray]]] = {
        "uniform": _uniform, "ecsq": _ecsq, "kmeans": lambda W: _kmeans(W, h),
        "dependent": lambda W: _dependent(W, h)}
    at = makers[family](W)
    lo, hi = _knob_range(W, family)
    try:
        best = at(hi if finest else lo)
    except QuantizeError:
        return None
    if not fits(best):
        return None
    for _ in range(STEPS):
        mid = math.sqrt(lo * hi) if family in ("uniform", "dependent") else 0.5 * (lo + hi)
        if family == "kmeans":
            mid = float(round(mid))
        if mid in (lo, hi):
            break
        Q = at(mid)
        ok = fits(Q)
        if ok:
            best = Q
        if ok != finest:  # the result fits and we want coarser, or it fails and we need finer
            lo = mid
        else:
            hi = mid
    return best


def compress(W: Any, *, rel_error: float | None = None, bits_per_weight: float | None = None,
             importance: Any = None, format: str = "auto", objective: str = "size",
             families: tuple[str, ...] = FAMILIES) -> Encoded:
    """The smallest exact encoding of a quantized ``W`` whose relative error is at most
    ``rel_error``, or the lowest-error one within ``bits_per_weight`` (give one). See the
    module's docstring for the error, the search and its cost. ``decode()`` of the result is
    the quantized matrix, bit for bit; its error against ``W`` meets the target as stated
    (measured on the result, not estimated). Raises :class:`QuantizeError` when no family
    meets the target."""
    W = check_matrix(W)
    if not np.isfinite(W).all():
        raise QuantizeError("compress: W has NaN or infinite entries: no error of an "
                            "approximation is defined (encode such a matrix losslessly)")
    if (rel_error is None) == (bits_per_weight is None):
        raise OptionError("compress: give exactly one of rel_error= and bits_per_weight=")
    target = check_target("compress: the target",
                          rel_error if rel_error is not None else bits_per_weight)
    if objective not in OBJECTIVES:
        raise OptionError(f"compress: objective must be one of {OBJECTIVES}, found "
                          f"{objective!r}")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise OptionError(f"compress: families must be some of {FAMILIES}, found "
                          f"{list(families)}")
    h = None
    if importance is not None:
        h = np.asarray(importance, np.float64)
        if h.shape != W.shape or not np.isfinite(h).all() or (h < 0).any():
            raise OptionError(f"compress: importance must be finite, >= 0 and of W's shape "
                              f"{W.shape}, found shape {h.shape}")
    error = _error_of(W, h)
    budget = None if bits_per_weight is None else bits_per_weight * W.size / 8

    def fits(Q: np.ndarray) -> bool:
        if budget is None:
            return error(Q) <= target
        return min(candidate_sizes(Matrix(Q)).values()) <= budget

    found = {f: Q for f in families
             if (Q := _search(W, f, fits, budget is not None, h)) is not None}
    if not found:
        what = (f"a relative error of {rel_error}" if budget is None
                else f"{bits_per_weight} bits per weight")
        raise QuantizeError(f"compress: no quantizer of {list(families)} reaches {what}")
    encs = [encode(Q, format=format, objective=objective) for Q in found.values()]
    if budget is None:
        return min(encs, key=lambda e: e.nbytes)
    within = [e for e in encs if e.nbytes <= budget]  # format= may be larger than auto's
    if not within:
        raise QuantizeError(f"compress: format {format!r} does not fit {bits_per_weight} bits "
                            "per weight")
    return min(within, key=lambda e: error(e.decode()))
