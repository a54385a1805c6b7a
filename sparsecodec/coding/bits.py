"""Bit streams over 64-bit words and fixed-width packing of unsigned integers.

Bit order (normative, see ``formats/bitstream.md``): a stream is a sequence of bits
``b_0, b_1, ...`` stored in ``uint64`` words; word ``w`` holds ``b_{64w} .. b_{64w+63}`` with
``b_{64w}`` as its most significant bit. Words are little-endian on disk. A value of width ``k``
is written most significant bit first, so canonical Huffman codes compare as integers. Bits after
the last used bit of the last word are zero.

Everything here is a plain numba function over arrays; readers never touch memory outside the
word array, whatever position they are asked for.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..errors import FormatError

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U63 = np.uint64(63)
MAX_FIXED_WIDTH = 64


def width_for(max_value: int) -> int:
    """Bits needed to store every integer in ``[0, max_value]`` (0 when ``max_value <= 0``)."""
    return int(max_value).bit_length() if max_value > 0 else 0


def words_for(nbits: int) -> int:
    """Number of 64-bit words holding ``nbits`` bits."""
    return (int(nbits) + 63) // 64


@njit(cache=True, nogil=True, inline="always")
def peek64(words, p):
    """The 64 bits starting at bit ``p`` (zeros past the end of ``words``)."""
    nw = words.shape[0]
    w = p >> 6
    o = np.uint64(p & 63)
    hi = _U0
    if w < nw:
        hi = words[w] << o
    lo = _U0
    if w + 1 < nw:
        # two shifts so that o == 0 never shifts by 64 (undefined in LLVM)
        lo = (words[w + 1] >> _U1) >> (_U63 - o)
    return hi | lo


@njit(cache=True, nogil=True, inline="always")
def read_bits(words, p, width):
    """The unsigned ``width``-bit value (0..64) starting at bit ``p``."""
    if width == 0:
        return _U0
    return peek64(words, p) >> np.uint64(64 - width)


@njit(cache=True, nogil=True, inline="always")
def reader_at(words, p):
    """Start a sequential reader at bit ``p``: returns its state ``(buf, used, p)``."""
    return peek64(words, p), 0, p


@njit(cache=True, nogil=True, inline="always")
def read_next(words, buf, used, p, width):
    """Next ``width``-bit value (1..32) of a sequential reader; returns (value, buf, used, p).

    One peek serves ``64 // width`` values, so a run of fixed-width values costs a shift and an
    add each instead of two guarded loads.
    """
    if used > 64 - width:
        p += used
        buf = peek64(words, p)
        used = 0
    v = (buf << np.uint64(used)) >> np.uint64(64 - width)
    return v, buf, used + width, p


@njit(cache=True, nogil=True, inline="always")
def write_bits(words, p, value, width):
    """OR the low ``width`` bits of ``value`` into the stream at bit ``p`` (bits must be zero)."""
    if width == 0:
        return
    v = np.uint64(value)
    if width < 64:
        v &= (_U1 << np.uint64(width)) - _U1
    w = p >> 6
    o = p & 63
    free = 64 - o
    if width <= free:
        words[w] |= v << np.uint64(free - width)
    else:
        spill = width - free
        words[w] |= v >> np.uint64(spill)
        words[w + 1] |= v << np.uint64(64 - spill)


@njit(cache=True, nogil=True)
def _pack(values, width, out):
    p = 0
    for i in range(values.shape[0]):
        write_bits(out, p, values[i], width)
        p += width


@njit(cache=True, nogil=True, parallel=True)
def _unpack(words, width, start, count, out):
    chunk = 1 << 14
    nchunks = (count + chunk - 1) // chunk
    for c in prange(nchunks):
        lo = c * chunk
        hi = min(count, lo + chunk)
        p = (start + lo) * width
        for i in range(lo, hi):
            out[i] = read_bits(words, p, width)
            p += width


@njit(cache=True, nogil=True)
def _max_value(values):
    m = np.uint64(0)
    for i in range(values.shape[0]):
        v = np.uint64(values[i])
        if v > m:
            m = v
    return m


def pack(values: np.ndarray, width: int) -> np.ndarray:
    """Pack non-negative integers into ``ceil(len * width / 64)`` words at ``width`` bits each.

    ``values`` may be any integer dtype; every value must fit in ``width`` bits (checked).
    """
    values = np.ascontiguousarray(values)
    if not 0 <= width <= MAX_FIXED_WIDTH:
        raise ValueError(f"fixed width must be in 0..64, got {width}")
    n = values.shape[0]
    out = np.zeros(words_for(n * width), dtype=np.uint64)
    if n == 0 or width == 0:
        if n and width == 0 and np.any(values):
            raise ValueError("width 0 can only hold zeros")
        return out
    if values.dtype.kind == "i" and values.min() < 0:
        raise ValueError("cannot pack negative integers")
    if width < 64 and int(_max_value(values)) >> width:
        raise ValueError(f"a value does not fit in {width} bits")
    _pack(values, width, out)
    return out


def unpack(words: np.ndarray, width: int, count: int, start: int = 0) -> np.ndarray:
    """Read ``count`` values of ``width`` bits starting with value number ``start``, as int64.

    Values of width 64 above 2**63 wrap; no stored field here is that wide.
    """
    out = np.zeros(count, dtype=np.int64)
    if count and width:
        if (start + count) * width > 64 * words.shape[0]:
            raise FormatError(
                f"packed array too short: {count} values of {width} bits need "
                f"{words_for((start + count) * width)} words, found {words.shape[0]}"
            )
        _unpack(words, width, start, count, out.view(np.uint64))
    return out


def check_packed(words: np.ndarray, count: int, width: int, what: str) -> None:
    """Raise :class:`FormatError` unless ``words`` is exactly the packing of ``count`` values.

    Exactly: the word count is ``ceil(count * width / 64)`` and the padding bits are zero, so
    that every encoding has one canonical byte form.
    """
    need = words_for(count * width)
    if words.shape[0] != need:
        raise FormatError(
            f"{what}: {count} values of {width} bits need {need} words, found {words.shape[0]}"
        )
    check_padding(words, count * width, what)


def check_padding(words: np.ndarray, nbits: int, what: str) -> None:
    """Raise :class:`FormatError` unless the bits after the first ``nbits`` are zero."""
    used = nbits & 63
    if used and words.shape[0]:
        if int(words[-1]) & ((1 << (64 - used)) - 1):
            raise FormatError(f"{what}: padding bits after bit {nbits} are not zero")


# --------------------------------------------------------------------------- Exp-Golomb codes
# Order-k Exp-Golomb code of v >= 0: with u = v + 2^k of b bits, (b - 1 - k) zero bits, then u
# in b bits; 2b - 1 - k bits in all. Small values are short, and k trades the short end for the
# long one. Used for frequency tables, whose entries are mostly small.

EG_MAX_ORDER = 32


def exp_golomb_bits(values: np.ndarray, order: int) -> int:
    """Bits of the order-``order`` Exp-Golomb codes of ``values`` (non-negative integers)."""
    u = np.asarray(values, np.int64) + (1 << order)
    b = np.floor(np.log2(u)).astype(np.int64) + 1
    return int((2 * b - 1 - order).sum())


def best_exp_golomb(values: np.ndarray, max_order: int) -> tuple[int, int]:
    """(order, bits) of the cheapest Exp-Golomb order in 0..max_order for ``values`` (the
    first order on a tie), every order sized at once over the distinct values and their
    counts (tables repeat a few values)."""
    distinct, counts = np.unique(np.asarray(values, np.int64), return_counts=True)
    k = np.arange(max_order + 1, dtype=np.int64)[:, None]
    b = np.floor(np.log2(distinct[None, :] + (np.int64(1) << k))).astype(np.int64) + 1
    bits = (counts[None, :] * (2 * b - 1 - k)).sum(axis=1)
    best = int(np.argmin(bits))
    return best, int(bits[best])


@njit(cache=True, nogil=True)
def _eg_write(values, order, out):
    p = 0
    for i in range(values.shape[0]):
        u = np.int64(values[i]) + (np.int64(1) << order)
        b = 0
        while (u >> b) > 0:
            b += 1
        p += b - 1 - order  # the zero prefix is already zero
        write_bits(out, p, u, b)
        p += b
    return p


def exp_golomb_encode(values: np.ndarray, order: int) -> np.ndarray:
    """Pack the order-``order`` Exp-Golomb codes of ``values`` into 64-bit words, MSB first."""
    values = np.ascontiguousarray(values, np.int64)
    out = np.zeros(words_for(exp_golomb_bits(values, order)) if values.size else 0, np.uint64)
    if values.size:
        _eg_write(values, order, out)
    return out


@njit(cache=True, nogil=True)
def _eg_read(words, count, order, max_value, out):
    """Decode ``count`` codes; returns the bits used, or -1 when a code is longer than
    ``max_value`` allows or runs past the words."""
    total = 64 * words.shape[0]
    limit = 0  # bits of the largest u = max_value + 2^order
    while ((max_value + (np.int64(1) << order)) >> limit) > 0:
        limit += 1
    p = 0
    for i in range(count):
        z = 0
        while p + z < total and read_bits(words, p + z, 1) == 0 and z <= limit:
            z += 1
        b = z + 1 + order
        if b > limit or p + z + b > total:
            return -1
        u = np.int64(read_bits(words, p + z, b))
        v = u - (np.int64(1) << order)
        if v > max_value:
            return -1
        out[i] = v
        p += z + b
    return p


def exp_golomb_decode(words: np.ndarray, count: int, order: int, max_value: int,
                      what: str) -> np.ndarray:
    """Read exactly ``count`` codes filling ``words`` (zero padding only, as packed arrays),
    each at most ``max_value``; else :class:`FormatError`."""
    if not 0 <= order <= EG_MAX_ORDER:
        raise FormatError(f"{what}: Exp-Golomb order {order} is outside 0..{EG_MAX_ORDER}")
    out = np.zeros(count, np.int64)
    used = _eg_read(words, count, order, max_value, out) if count else 0
    if used < 0:
        raise FormatError(f"{what}: a code is truncated or exceeds {max_value}")
    if words.shape[0] != words_for(used):
        raise FormatError(f"{what}: {used} bits of codes need {words_for(used)} words, "
                          f"found {words.shape[0]}")
    check_padding(words, used, what)
    return out
