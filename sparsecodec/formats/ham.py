"""``ham`` (Huffman Address Map): every entry, zeros included, canonical-Huffman coded.

Entries are coded in column-major order. The stream is cut into blocks of ``block_cols``
columns, each split into 4 interleaved lanes, so blocks decode in parallel and any column
range can be decoded alone. Components: ``symbols``, ``code_counts``, ``stream``, ``offsets``
(see :class:`sparsecodec.coding.huffman.HuffmanPart`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.huffman import HuffmanPart, code_lengths, count_symbol, stream_bits, stream_nbytes
from ..coding.information import information_bits
from ..errors import FormatError
from ..kernels import entropy as ke
from .base import Matrix, PsiBounds, bits_dtype, component, float_view, meta_int, register
from .blocked import (
    BLOCK_SYMBOLS,
    BlockedStream,
    block_starts,
    check_coder_options,
    dense_block_cols,
    limit_for,
)
from .psi import psi_ham


@register
class HAM(BlockedStream):
    format = "ham"
    options = ("block_symbols", "max_code_length")

    def __init__(self, shape, dtype, part: HuffmanPart, block_cols: int):
        super().__init__(shape, dtype)
        self.part = part
        self.block_cols = block_cols
        self._nnz: int | None = None

    @classmethod
    def _encode(cls, M: Matrix, block_symbols: int = BLOCK_SYMBOLS,
                max_code_length: int | None = None) -> HAM:
        check_coder_options(cls.format, block_symbols, max_code_length)
        d = M.require_distinct("all", cls.format)
        n, m = M.shape
        bc = dense_block_cols(n, m, block_symbols)
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
        nblocks = -(-m // dense_block_cols(n, m, block_symbols))
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

    def psi_bounds(self, M: Matrix) -> PsiBounds:
        d = M.all_distinct
        if d is None or not d.k:
            return PsiBounds()
        (n, m), B = self.shape, 8 * self.dtype.itemsize
        return PsiBounds(psi_ham(n, m, d.k, B), None, psi_ham(n, m, d.k, B, "stored"))

    def own_limit(self, M: Matrix) -> float | None:
        """The zero-order information of every entry, zeros included."""
        return information_bits(M.value_counts())

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
                bad, zeros = count_symbol(self.part.words, self.part.lane_off,
                                          block_starts(n, m, self.block_cols, None), t.table,
                                          t.limit, t.base, t.first, t.bits, t.maxlen,
                                          int(zero[0]))
                status.check_block(self.format, int(bad))
            self._nnz = n * m - int(zeros)
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
