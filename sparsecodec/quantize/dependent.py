"""Dependent (trellis-coded) quantization with rates from the coder's own contexts.

Reference: Schwarz, Nguyen, Marpe, Wiegand, "Hybrid video coding with trellis-coded
quantization", DCC 2019, the scheme MPEG NNR (NNCodec) adopted for weights. Two scalar
quantizers share one step: Q0 reconstructs the even multiples of the step, Q1 the odd ones and
zero. A 4-state machine walked along each line (a column, or a row with ``order="rows"``) picks
the quantizer of every weight from the parities of the indices before it; a Viterbi search
finds, per line, the levels minimising ``sum h (w - q)^2 + lam * bits``. Because the decoder
knows the state, an index costs about its entropy given the state, and the union of the two
grids is twice as fine as either: at the same bits, a lower error than any scalar quantizer
(at high rate up to about 0.15 bits per weight with 4 states).

``sham_ans`` codes the result with the same machine (its ``state`` contexts), which is what
turns that into bytes; the bits in the search come from that model's statistics: the chance of
a zero in each state and the level distribution of each quantizer class, re-estimated from the
previous pass (``n_iter`` passes)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import QuantizeError
from ..kernels import trellis as kt
from .result import Quantized, check_like, check_weights, from_values

ORDERS = ("columns", "rows")
LAM_FACTOR = 0.5    # lam = LAM_FACTOR * step^2 (squared weight per bit) unless given: the
                    # best of 0.16-1.2 on Gaussian layers at errors 0.02-0.4 (bench/rd.py)
MAX_HALF = 1 << 12  # levels tabulated for the rate model: [-MAX_HALF, MAX_HALF]


def _rates(zeros: np.ndarray, nonzeros: np.ndarray, hist: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bits of a zero and of a nonzero per state, and of each level per class, from counts
    (half a count added to each, so unseen levels stay possible)."""
    tot = zeros + nonzeros + 1.0
    zero_bits = -np.log2((zeros + 0.5) / tot)
    nz_bits = -np.log2((nonzeros + 0.5) / tot)
    h = hist + 0.5
    value_bits = -np.log2(h / h.sum(axis=1, keepdims=True))
    return zero_bits, nz_bits, value_bits


def dependent(W: Any, step: Any, *, lam: float | None = None, importance: Any = None,
              order: str = "columns", n_iter: int = 3) -> Quantized:
    """Trellis-quantize a 2-D ``W`` with quantizer ``step``: every weight becomes
    ``step * m`` for an integer m (computed in float64, rounded once to W's dtype), the
    levels chosen per line by a Viterbi search over the 4-state machine of
    ``kernels.trellis``. ``step`` is one number, or one per line (per column with
    ``order="columns"``: a per-output-channel quantizer, which the ``scaled`` format stores
    with its levels shared by every column). ``lam`` (squared weight per bit; default
    ``LAM_FACTOR * step^2``, per line) trades error for bits; ``importance`` (h >= 0, W's
    shape) weights the squared error. Zeros stay +0.0, no value is -0.0. Cost: ``n_iter``
    Viterbi passes of 4 states x 3 candidates per weight, in parallel over lines."""
    A = check_weights(W)
    if A.ndim != 2:
        raise QuantizeError(f"dependent quantization needs a 2-D matrix, got {A.ndim} "
                            "dimension(s)")
    if order not in ORDERS:
        raise QuantizeError(f"order must be one of {ORDERS}, got {order!r}")
    nlines = A.shape[1] if order == "columns" else A.shape[0]
    if isinstance(step, bool) or isinstance(step, str):
        raise QuantizeError(f"step must be a finite number > 0 (or one per line), got "
                            f"{step!r}")
    steps = np.asarray(step, np.float64)
    if steps.ndim == 0:
        steps = np.full(nlines, float(steps))
    if steps.shape != (nlines,) or not np.isfinite(steps).all() or (steps <= 0).any():
        raise QuantizeError(f"step must be a finite number > 0, or {nlines} of them (one per "
                            f"line), got {step!r}")
    lams = LAM_FACTOR * steps * steps if lam is None else np.full(nlines, lam, np.float64)
    if lam is not None and (not math.isfinite(lam) or lam < 0):
        raise QuantizeError(f"lam must be a finite number >= 0, got {lam!r}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise QuantizeError(f"n_iter must be an integer >= 1, got {n_iter!r}")
    lines = A.T if order == "columns" else A
    Wl = np.ascontiguousarray(lines, np.float64)
    H = np.ones_like(Wl)
    if importance is not None:
        h = check_like(A, importance, "importance")
        H = np.ascontiguousarray(h.T if order == "columns" else h)
    if (H < 0).any():
        raise QuantizeError("importance must be >= 0")
    with np.errstate(over="ignore", invalid="ignore"):
        first = np.rint(Wl / steps[:, None])
    top = float(np.abs(first).max(initial=0.0))
    if top >= float(kt.MAX_LEVEL):
        raise QuantizeError(f"step {step!r} is too fine for these weights: levels up to "
                            f"{top:.3g} (at most {kt.MAX_LEVEL})")
    half = int(min(MAX_HALF, max(2, top + 2)))
    levels = first.astype(np.int64)
    for _ in range(n_iter):  # rates from the previous pass: plain rounding first
        levels = kt.levels(Wl, H, steps, lams, *_rates(*kt.statistics(levels, half)))
    values = (steps[:, None] * levels).astype(A.dtype)  # a level 0: +0.0 (steps are > 0)
    values = np.ascontiguousarray(values.T) if order == "columns" else values
    return from_values(A, values, "dependent", {
        "step": step if steps.size == 0 or np.ndim(step) else float(steps[0]),
        "lam": lam if lam is not None else "LAM_FACTOR * step^2", "order": order,
        "n_iter": n_iter})
