"""What the Huffman-coded formats share: coder options, blocks of columns and the blocked
Huffman stream of nonzero values.

``ham``, ``sham``, ``sham_gap``, ``sham_ans`` and ``pq`` cut their streams into blocks of
whole columns so blocks decode in parallel and any column range decodes alone. Every helper
takes the name of the format being called, so its errors name that format.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from .. import status
from ..coding.bits import check_packed, width_for, words_for
from ..coding.huffman import (
    MAX_CODE_LENGTH,
    HuffmanPart,
    code_lengths,
    default_max_length,
    stream_bits,
    stream_nbytes,
)
from ..errors import FormatError, OptionError
from ..kernels.compressed import has_zero
from .base import Encoded, Matrix, bits_dtype, component, meta_int

BLOCK_SYMBOLS = 1 << 14
"""Default number of symbols per block: 64 KiB of int32 scratch, and plenty of parallel tasks."""


def check_coder_options(fmt: str, block_symbols: Any, max_code_length: Any) -> None:
    """Refuse a ``block_symbols`` or ``max_code_length`` that is not an integer in range."""
    for name, v, lo, hi in (("block_symbols", block_symbols, 1, 1 << 30),
                            ("max_code_length", max_code_length, 1, MAX_CODE_LENGTH)):
        if v is None and name == "max_code_length":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise OptionError(f"{fmt}: {name} must be an integer in {lo}..{hi}, found {v!r}")


def limit_for(k: int, max_code_length: int | None) -> int:
    """The code length limit for ``k`` symbols: as asked, or the default."""
    return default_max_length(k) if max_code_length is None else int(max_code_length)


def dense_block_cols(n: int, m: int, block_symbols: int) -> int:
    """Columns per block when every one of the ``n`` entries of a column is a symbol."""
    return max(1, min(max(m, 1), -(-block_symbols // max(n, 1))))


def sparse_block_cols(m: int, nnz: int, block_symbols: int) -> int:
    """Columns per block when the ``nnz`` nonzeros of ``m`` columns are the symbols."""
    per_col = max(nnz, 1) / max(m, 1)
    return max(1, min(max(m, 1), int(np.ceil(block_symbols / per_col))))


def block_starts(per_col: np.ndarray | int, m: int, block_cols: int, ptr: np.ndarray | None
                 ) -> np.ndarray:
    """First symbol of each block of ``block_cols`` columns, plus the total."""
    cols = np.minimum(np.arange(0, m + block_cols, block_cols), m)
    if m == 0:
        cols = np.zeros(1, np.int64)
    return (cols * per_col if ptr is None else ptr[cols]).astype(np.int64)


def block_range(start: int, stop: int, block_cols: int, m: int) -> tuple[int, int, int, int]:
    """Blocks ``[b_lo, b_hi)`` covering columns ``[start, stop)`` and the columns they span."""
    if start == stop:
        return 0, 0, start, start
    b_lo, b_hi = start // block_cols, -(-stop // block_cols)
    return b_lo, b_hi, b_lo * block_cols, min(m, b_hi * block_cols)


def nonzero_part(M: Matrix, fmt: str, block_symbols: int, max_code_length: int | None
                 ) -> tuple[HuffmanPart, np.ndarray, int, int, np.ndarray]:
    """The nonzero values' Huffman part in column-major order, blocked by columns: (part,
    column pointers, nnz, block_cols, block starts). ``sham`` and ``sham_gap`` store it."""
    check_coder_options(fmt, block_symbols, max_code_length)
    d = M.require_distinct("nonzero", fmt)
    ptr = M.csc[0]
    nnz = int(ptr[-1])
    bc = sparse_block_cols(M.shape[1], nnz, block_symbols)
    starts = block_starts(0, M.shape[1], bc, ptr)
    part = HuffmanPart.encode(d.values.view(M.dtype), d.counts, d.symbols, starts,
                              limit_for(d.k, max_code_length))
    return part, ptr, nnz, bc, starts


def nonzero_part_nbytes(M: Matrix, fmt: str, block_symbols: int, max_code_length: int | None
                        ) -> tuple[int, int] | None:
    """(bytes of :func:`nonzero_part` plus the packed column pointers, the number of blocks),
    or None with too many distinct values."""
    check_coder_options(fmt, block_symbols, max_code_length)
    d = M.nonzero_distinct
    if d is None:
        return None
    m, nnz = M.shape[1], M.nnz
    lengths = code_lengths(d.counts, limit_for(d.k, max_code_length))
    nblocks = -(-m // sparse_block_cols(m, nnz, block_symbols))
    return (stream_nbytes(d.k, M.dtype.itemsize, int(lengths.max(initial=0)),
                          stream_bits(d.counts, lengths), nblocks)
            + 8 * words_for((m + 1) * width_for(nnz))), nblocks


class BlockedStream(Encoded):
    """What ``ham``, ``sham`` and ``sham_gap`` share: a Huffman part cut into blocks of
    ``block_cols`` columns, decoded (whole or by column range) one block per parallel task."""

    part: HuffmanPart
    block_cols: int

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        """The distinct values (its Huffman symbols), and at least one bit per coded nonzero
        when there are two symbols or more (a Huffman code is never shorter)."""
        k = M.nonzero_k_at_least
        return k * M.dtype.itemsize + (M.nnz // 8 if k >= 2 else 0)

    @abstractmethod
    def _decode_blocks(self, b_lo: int, b_hi: int, flat: np.ndarray) -> int:
        """Decode blocks b_lo..b_hi into the zero-filled column-major ``flat``; returns the
        first corrupt block or -1."""

    def _check(self, bad: int) -> None:
        status.check_block(self.format, bad)

    def decode(self) -> np.ndarray:
        return self.decode_columns(0, self.shape[1])

    def decode_columns(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._column_range(start, stop)
        n, m = self.shape
        b_lo, b_hi, c_lo, c_hi = block_range(start, stop, self.block_cols, m)
        flat = np.zeros(n * (c_hi - c_lo), bits_dtype(self.dtype))
        self._check(self._decode_blocks(b_lo, b_hi, flat))
        out = flat.view(self.dtype).reshape(c_hi - c_lo, n).T
        return out[:, start - c_lo:stop - c_lo]


class NonzeroStream(BlockedStream):
    """What ``sham`` and ``sham_gap`` share: the nonzero values' Huffman part in blocks of
    ``block_cols`` columns (:func:`nonzero_part`), the ``m + 1`` packed column pointers
    ``indptr``, and the meta ``nnz`` and ``block_cols``."""

    def __init__(self, shape: tuple[int, int], dtype: np.dtype, part: HuffmanPart,
                 indptr: np.ndarray, nnz: int, block_cols: int):
        super().__init__(shape, dtype)
        self.part = part
        self.indptr = indptr
        self._nnz = nnz
        self.block_cols = block_cols

    def _meta(self) -> dict[str, Any]:
        return {"nnz": self._nnz, "block_cols": self.block_cols}

    @property
    def nnz(self) -> int:
        return self._nnz

    @classmethod
    def size_of(cls, M: Matrix, block_symbols: int = BLOCK_SYMBOLS,
                max_code_length: int | None = None) -> int | None:
        got = nonzero_part_nbytes(M, cls.format, block_symbols, max_code_length)
        if got is None:
            return None
        return got[0] + cls._positions_nbytes(M, got[1], max_code_length)

    @classmethod
    @abstractmethod
    def _positions_nbytes(cls, M: Matrix, nblocks: int, max_code_length: int | None) -> int:
        """Bytes of how the format stores the rows of the nonzeros (besides ``indptr``)."""

    @classmethod
    def _stored_part(cls, shape: tuple[int, int], dtype: np.dtype, meta: dict[str, Any],
                     comps: dict[str, np.ndarray]) -> tuple[int, int, np.ndarray, HuffmanPart]:
        """(nnz, block_cols, the packed indptr, the values' part) from stored parts, each
        checked: the pointers' packing (their order is the caller's to check, with what it
        stores besides), the values' count and that none is +0.0, the code and the stream's
        lane offsets."""
        fmt = cls.format
        n, m = shape
        nnz = meta_int(meta, "nnz", fmt, 0, n * m)
        bc = meta_int(meta, "block_cols", fmt, 1, max(m, 1))
        indptr = component(comps, "indptr", fmt, np.uint64)
        check_packed(indptr, m + 1, width_for(nnz), f"{fmt}: indptr")
        symbols = component(comps, "symbols", fmt, dtype)
        if (nnz > 0) != (symbols.shape[0] > 0):
            raise FormatError(f"{fmt}: {symbols.shape[0]} symbols for {nnz} nonzeros")
        if has_zero(symbols.view(bits_dtype(dtype))):
            raise FormatError(f"{fmt}: the codebook holds +0.0 (zeros are never stored)")
        part = HuffmanPart.from_stored(
            symbols, component(comps, "code_counts", fmt, np.uint32),
            component(comps, "stream", fmt, np.uint64),
            component(comps, "offsets", fmt, np.uint64), -(-m // bc), fmt)
        return nnz, bc, indptr, part
