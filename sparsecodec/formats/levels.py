"""A value table stored as one step and integer levels: the symbols of a quantizer on a grid
(uniform, dependent) cost a few bits each instead of a float each.

Symbol i is ``T(step * m_i)``: the binary64 product of the step by the integer m_i, rounded
once to the matrix dtype T. The levels are stored as the order-g Exp-Golomb codes of
``zigzag(m_i - m_(i-1))`` (m_(-1) = 0; zigzag(d) = 2d for d >= 0, -2d - 1 below), so runs of
consecutive levels, which sorted symbols of a grid quantizer are, cost about 3 bits a level.
Spec: ``formats/sham_ans.md`` (the format that uses it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coding.bits import best_exp_golomb, exp_golomb_bits, exp_golomb_decode, exp_golomb_encode
from ..errors import FormatError
from .base import bits_dtype, widened

MAX_GRID_SYMBOLS = 1 << 12  # larger value tables are stored as floats (keeps sizing cheap)
MAX_LEVEL = 1 << 40          # |m| below this
MAX_ORDER = 16


def zigzag(d: np.ndarray) -> np.ndarray:
    return np.where(d >= 0, 2 * d, -2 * d - 1)


def unzigzag(z: np.ndarray) -> np.ndarray:
    return np.where(z & 1, -(z >> 1) - 1, z >> 1)


def index_parities(levels: np.ndarray) -> np.ndarray:
    """Each level's index parity in dependent quantization's class 0 (bit 0: m = 2k) and
    class 1 (bit 1: m = 2k - sgn k)."""
    m = np.asarray(levels, np.int64)
    return (((m >> 1) & 1) | ((((m + np.sign(m)) >> 1) & 1) << 1)).astype(np.int8)


@dataclass(frozen=True)
class SymbolGrid:
    """A value table as ``step`` (float64, finite, > 0) and ``levels`` (int64, none 0)."""

    step: float
    levels: np.ndarray

    def deltas(self) -> np.ndarray:
        return zigzag(np.diff(self.levels, prepend=0))

    @property
    def order(self) -> int:
        return best_exp_golomb(self.deltas(), MAX_ORDER)[0] if self.levels.size else 0

    def words(self) -> np.ndarray:
        return exp_golomb_encode(self.deltas(), self.order)

    def bits(self) -> int:
        return exp_golomb_bits(self.deltas(), self.order)

    def values(self, dtype: np.dtype) -> np.ndarray:
        """The symbols, ``T(step * m)``."""
        with np.errstate(over="ignore"):
            return (self.step * self.levels.astype(np.float64)).astype(dtype)

    @classmethod
    def read(cls, step: np.ndarray, words: np.ndarray, count: int, order: int,
             what: str) -> SymbolGrid:
        """From stored parts; :class:`FormatError` for a step that is not one finite number
        above 0, codes that do not decode to ``count`` levels, or a level 0 or past 2^40."""
        if step.shape != (1,) or not np.isfinite(step[0]) or not step[0] > 0:
            raise FormatError(f"{what}: the step must be one finite number > 0")
        if not 0 <= order <= MAX_ORDER:
            raise FormatError(f"{what}: Exp-Golomb order {order} is outside 0..{MAX_ORDER}")
        z = exp_golomb_decode(words, count, order, 4 * MAX_LEVEL, what)
        levels = np.cumsum(unzigzag(z))
        if levels.size and ((levels == 0).any() or (np.abs(levels) >= MAX_LEVEL).any()):
            raise FormatError(f"{what}: a level is 0 or not below 2^40 in magnitude")
        return cls(float(step[0]), levels)


def step_guesses(values: np.ndarray) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """The two guesses of the step of a grid the ``values`` lie on, the smallest |value| and
    half of it, each as (guess, |values| / guess, those ratios rounded: the levels' sizes).
    None when a value is 0, NaN or infinite, and a guess whose ratios are not all finite
    (a subnormal halved to 0, or a ratio past the largest float) is left out."""
    a = np.abs(widened(values))
    if not a.size or not np.isfinite(a).all() or a.min() == 0:
        return []
    out = []
    with np.errstate(all="ignore"):
        for base in (a.min(), a.min() / 2):
            r = a / base
            if base > 0 and np.isfinite(r).all():
                out.append((float(base), r, np.rint(r)))
    return out


def grid_parities(values: np.ndarray, grid: SymbolGrid | None = None) -> np.ndarray | None:
    """Each symbol's index parities (bit 0: in quantizer class 0, bit 1: in class 1) when the
    values are integer multiples m of one step, as dependent quantization makes them
    (``quantize.dependent``): the levels of ``grid`` when given, else those of the first
    guess of ``step_guesses`` that puts every value on its grid to within the dtype's
    rounding. None when neither does. The parities only choose contexts: a wrong guess costs
    bits, never exactness."""
    if grid is not None:
        return index_parities(grid.levels)
    eps = float(np.finfo(values.dtype).eps)
    for _, r, m in step_guesses(values):
        if m.max() >= MAX_LEVEL:
            return None
        if (np.abs(r - m) <= np.minimum(0.25, 4 * eps * np.maximum(1.0, m))).all():
            return index_parities(m.astype(np.int64) * np.sign(widened(values)).astype(np.int64))
    return None


def find_grid(values: np.ndarray) -> SymbolGrid | None:
    """A step and integer levels that give back every one of ``values`` (nonzero, of one float
    dtype) bit for bit, or None. The step is searched from ``step_guesses``: the levels are
    the values over a guess, rounded; then the step is the middle of the interval every value
    allows (each value rounds back from half a unit in the last place either side of it,
    divided by its level), unless the guess works itself; a step is kept only if every
    product rounds back exactly. At most ``MAX_GRID_SYMBOLS`` values."""
    k = values.shape[0]
    if not 0 < k <= MAX_GRID_SYMBOLS:
        return None
    dtype = values.dtype
    guesses = step_guesses(values)
    if not guesses:
        return None
    v = widened(values)
    a = np.abs(v)
    with np.errstate(all="ignore"):  # the largest float's next one is inf: its interval too
        mags = np.abs(values)
        # the gaps to the next magnitude and to the one before
        ulp_above = widened(np.nextafter(mags, np.array(np.inf, dtype))) - a
        ulp_below = a - widened(np.nextafter(mags, np.array(0, dtype)))
        for base, r, m in guesses:
            if m.max() >= MAX_LEVEL or (np.abs(r - m) > 0.25).any():
                continue
            lo = float(((a - ulp_below / 2) / m).max())
            hi = float(((a + ulp_above / 2) / m).min())
            if not lo <= hi:
                continue
            levels = (m * np.sign(v)).astype(np.int64)
            for step in (base, 0.5 * (lo + hi), lo, hi):  # the plain one first, if it works
                grid = SymbolGrid(float(step), levels)
                if step > 0 and np.array_equal(grid.values(dtype).view(bits_dtype(dtype)),
                                               values.view(bits_dtype(dtype))):
                    return grid
    return None
