"""``ham`` (Huffman Address Map): every entry, zeros included, canonical-Huffman coded.

Entries are coded in column-major order. The stream is cut into blocks of ``block_cols``
columns, each split into 4 interleaved lanes, so blocks decode in parallel and any column
range can be decoded alone. Components: ``symbols``, ``code_counts``, ``stream``, ``offsets``
(see :class:`sparsecodec.coding.huffman.HuffmanPart`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..coding.huffman import (
    MAX_CODE_LENGTH,
    HuffmanPart,
    code_lengths,
    count_symbol,
    default_max_length,
    stream_bits,
    stream_nbytes,
)
from ..errors import EncodeError, FormatError
from ..kernels import entropy as ke
from .base import Encoded, Matrix, bits_dtype, component, float_view, meta_int, register

BLOCK_SYMBOLS = 1 << 14
"""Default number of symbols per block: 64 KiB of int32 scratch, and plenty of parallel tasks."""


def check_coder_options(fmt: str, block_symbols: Any, max_code_length: Any) -> None:
    for name, v, lo, hi in (("block_symbols", block_symbols, 1, 1 << 30),
                            ("max_code_length", max_code_length, 1, MAX_CODE_LENGTH)):
        if v is None and name == "max_code_length":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise EncodeError(f"{fmt}: {name} must be an integer in {lo}..{hi}, found {v!r}")


def limit_for(k: int, max_code_length: int | None) -> int:
    """The code length limit for ``k`` symbols: as asked, or the default."""
    return default_max_length(k) if max_code_length is None else int(max_code_length)


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


class BlockedStream(Encoded):
    """What ``ham`` and ``sham`` share: a Huffman part cut into blocks of ``block_cols``
    columns, decoded (whole or by column range) one block per parallel task."""

    part: HuffmanPart
    block_cols: int

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        """The distinct values (its Huffman symbols), and at least one bit per coded nonzero
        when there are two symbols or more (a Huffman code is never shorter)."""
        k = M.nonzero_k_at_least
        return k * M.dtype.itemsize + (M.nnz // 8 if k >= 2 else 0)

    def _decode_blocks(self, b_lo: int, b_hi: int, flat: np.ndarray) -> int:
        """Decode blocks b_lo..b_hi into the zero-filled column-major ``flat``; returns the
        first corrupt block or -1."""
        raise NotImplementedError

    def _check(self, bad: int) -> None:
        if bad >= 0:
            raise FormatError(f"{self.format}: block {bad} of the stream is corrupt")

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


@register
class HAM(BlockedStream):
    format = "ham"
    options = ("block_symbols", "max_code_length")

    def __init__(self, shape, dtype, part: HuffmanPart, block_cols: int):
        super().__init__(shape, dtype)
        self.part = part
        self.block_cols = block_cols
        self._nnz: int | None = None

    @staticmethod
    def _block_cols(n: int, m: int, block_symbols: int) -> int:
        return max(1, min(max(m, 1), -(-block_symbols // max(n, 1))))

    @classmethod
    def _encode(cls, M: Matrix, block_symbols: int = BLOCK_SYMBOLS,
                max_code_length: int | None = None) -> HAM:
        check_coder_options(cls.format, block_symbols, max_code_length)
        d = M.require_distinct("all", cls.format)
        n, m = M.shape
        bc = cls._block_cols(n, m, block_symbols)
        part = HuffmanPart.encode(d.values.view(M.dtype), d.counts, d.symbols,
                                  block_starts(n, m, bc, None), limit_for(d.k, max_code_length))
        return cls(M.shape, M.dtype, part, bc)

    @classmethod
    def size_of(cls, M: Matrix, block_symbols: int = BLOCK_SYMBOLS,
                max_code_length: int | None = None) -> int | None:
        check_coder_options(cls.format, block_symbols, max_code_length)
        d = M.all_distinct
        if d is None:
            return None
        n, m = M.shape
        lengths = code_lengths(d.counts, limit_for(d.k, max_code_length))
        nblocks = -(-m // cls._block_cols(n, m, block_symbols))
        return stream_nbytes(d.k, M.dtype.itemsize, int(lengths.max(initial=0)),
                             stream_bits(d.counts, lengths), nblocks)

    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("symbols", "code_counts", "stream", "offsets")

    def _meta(self) -> dict[str, Any]:
        return {"block_cols": self.block_cols}

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> HAM:
        fmt = cls.format
        n, m = shape
        bc = meta_int(meta, "block_cols", fmt, 1, max(m, 1))
        symbols = component(comps, "symbols", fmt, dtype)
        if (n * m > 0) != (symbols.shape[0] > 0):
            raise FormatError(f"{fmt}: {symbols.shape[0]} symbols for a {shape} matrix")
        part = HuffmanPart.from_stored(
            symbols, component(comps, "code_counts", fmt, np.uint32),
            component(comps, "stream", fmt, np.uint64),
            component(comps, "offsets", fmt, np.uint64), -(-m // bc), fmt)
        return cls(shape, dtype, part, bc)

    def components(self) -> dict[str, np.ndarray]:
        return self.part.stored()

    def layout(self) -> dict[str, tuple[str, int]]:
        return self.part.layout()

    @property
    def nnz(self) -> int:
        if self._nnz is None:  # entries minus zero symbols, counted block by block
            n, m = self.shape
            zero = np.flatnonzero(self.part.symbols.view(bits_dtype(self.dtype)) == 0)
            zeros = 0
            if zero.size:
                t = self.part.tables
                zeros = int(count_symbol(self.part.words, self.part.lane_off,
                                         block_starts(n, m, self.block_cols, None), t.table,
                                         t.limit, t.base, t.first, t.bits, t.maxlen,
                                         int(zero[0])))
                if zeros < 0:
                    raise FormatError(f"{self.format}: the stream is corrupt")
            self._nnz = n * m - zeros
        return self._nnz

    def _decode_blocks(self, b_lo: int, b_hi: int, flat: np.ndarray) -> int:
        n, m = self.shape
        return ke.ham_decode(*self.part.kernel_args(),
                             self.part.symbols.view(bits_dtype(self.dtype)), n, m,
                             self.block_cols, b_lo, b_hi, flat)

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        Yt = np.zeros((self.shape[1], Xt.shape[1]), np.float64)
        if self.part.symbols.shape[0]:
            zero = np.flatnonzero(self.part.symbols.view(bits_dtype(self.dtype)) == 0)
            zero_sym = int(zero[0]) if zero.size else -1
            self._check(ke.ham_rmatmul(*self.part.kernel_args(),
                                       float_view(self.part.symbols, self.dtype), zero_sym,
                                       self.block_cols, Xt, Yt))
        return Yt
