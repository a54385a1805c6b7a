"""``sham_gap``: sHAM with entropy-coded positions. As ``sham``, the nonzero values are a
canonical Huffman stream; instead of ceil(log2 n)-bit row indices, each column's rows are
coded as gaps (first row + 1, then differences, all >= 1) with a second canonical Huffman code.
Both streams are cut into the same blocks of columns, so decoding and products stay parallel.

Components: the values part (``symbols``, ``code_counts``, ``stream``, ``offsets``), the gap
part (``gap_symbols`` as uint32 gap values, ``gap_code_counts``, ``gap_stream``,
``gap_offsets``) and ``indptr`` (m + 1 column pointers, packed); meta ``nnz``, ``block_cols``.
At 10% density a row index costs about 4.7 bits here instead of 12 (n = 4096).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.bits import pack, width_for
from ..coding.huffman import HuffmanPart, code_lengths, stream_bits, stream_nbytes
from ..coding.information import information_bits
from ..errors import FormatError
from ..kernels import compressed as kc
from ..kernels import gaps as kg
from .base import Matrix, bits_dtype, component, float_view, register
from .blocked import BLOCK_SYMBOLS, NonzeroStream, limit_for, nonzero_part

_GAP_NAMES = ("gap_symbols", "gap_code_counts", "gap_stream", "gap_offsets")


@register
class SHAMGap(NonzeroStream):
    format = "sham_gap"
    options = ("block_symbols", "max_code_length")

    def __init__(self, shape, dtype, part: HuffmanPart, gap_part: HuffmanPart,
                 indptr: np.ndarray, nnz: int, block_cols: int):
        super().__init__(shape, dtype, part, indptr, nnz, block_cols)
        self.gap_part = gap_part

    @staticmethod
    def _gap_stats(M: Matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(gap per nonzero, the distinct gaps ascending, their counts)."""
        ptr, rows, _ = M.csc
        gaps = kg.gaps_of(ptr, rows)
        counts = np.bincount(gaps, minlength=1) if gaps.size else np.zeros(1, np.int64)
        alphabet = np.flatnonzero(counts)
        return gaps, alphabet, counts[alphabet]

    @classmethod
    def _encode(cls, M: Matrix, block_symbols: int = BLOCK_SYMBOLS,
                max_code_length: int | None = None) -> SHAMGap:
        part, ptr, nnz, bc, starts = nonzero_part(M, cls.format, block_symbols, max_code_length)
        gaps, alphabet, counts = cls._gap_stats(M)
        rank = np.zeros(int(alphabet[-1]) + 1 if alphabet.size else 1, np.int32)
        rank[alphabet] = np.arange(alphabet.size, dtype=np.int32)
        gap_part = HuffmanPart.encode(alphabet.astype(np.uint32), counts, rank[gaps], starts,
                                      limit_for(alphabet.size, max_code_length))
        return cls(M.shape, M.dtype, part, gap_part, pack(ptr, width_for(nnz)), nnz, bc)

    @classmethod
    def _positions_nbytes(cls, M: Matrix, nblocks: int, max_code_length: int | None) -> int:
        """The row gaps' Huffman part."""
        _, alphabet, counts = cls._gap_stats(M)
        k = alphabet.size if M.nnz else 0
        lengths = code_lengths(counts, limit_for(k, max_code_length))
        return stream_nbytes(k, 4, int(lengths.max(initial=0)), stream_bits(counts, lengths),
                             nblocks)

    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("symbols", "code_counts", "stream", "offsets", *_GAP_NAMES, "indptr")

    def own_limit(self, M: Matrix) -> float | None:
        """The zero-order information of the nonzero values and of the row gaps."""
        return information_bits(M.nonzero_counts) + information_bits(self._gap_stats(M)[2])

    def components(self) -> dict[str, np.ndarray]:
        gap = dict(zip(_GAP_NAMES, self.gap_part.stored().values(), strict=True))
        return {**self.part.stored(), **gap, "indptr": self.indptr}

    def layout(self) -> dict[str, tuple[str, int]]:
        m = self.shape[1]
        roles = {"codebook": "codebook", "payload": "indices", "pointers": "pointers"}
        gap = {new: (roles[role], bits) for new, (role, bits) in
               zip(_GAP_NAMES, self.gap_part.layout().values(), strict=True)}
        return {**self.part.layout(), **gap,
                "indptr": ("pointers", (m + 1) * width_for(self._nnz))}

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> SHAMGap:
        fmt = cls.format
        n, m = shape
        nnz, bc, indptr, part = cls._stored_part(shape, dtype, meta, comps)
        pw = width_for(nnz)
        status.check(fmt, kc.check_pointers(indptr, pw, m, nnz))
        gap_symbols = component(comps, "gap_symbols", fmt, np.uint32)
        if (nnz > 0) != (gap_symbols.shape[0] > 0):
            raise FormatError(f"{fmt}: {gap_symbols.shape[0]} gap_symbols for {nnz} nonzeros")
        if gap_symbols.shape[0] and (int(gap_symbols.min()) < 1 or int(gap_symbols.max()) > n):
            raise FormatError(f"{fmt}: a gap symbol is outside 1..{n}")
        nblocks = -(-m // bc)
        gap_part = HuffmanPart.from_stored(
            gap_symbols, component(comps, "gap_code_counts", fmt, np.uint32),
            component(comps, "gap_stream", fmt, np.uint64),
            component(comps, "gap_offsets", fmt, np.uint64), nblocks, f"{fmt}: gaps")
        if nnz:
            bad, why = kg.check_rows(*gap_part.kernel_args(), gap_symbols, indptr, pw, n, m, bc)
            status.check(fmt, why, bad, part="gaps")
        return cls(shape, dtype, part, gap_part, indptr, nnz, bc)

    def _decode_blocks(self, b_lo: int, b_hi: int, flat: np.ndarray) -> int:
        n, m = self.shape
        return kg.decode(*self.part.kernel_args(), *self.gap_part.kernel_args(),
                         self.part.symbols.view(bits_dtype(self.dtype)), self.gap_part.symbols,
                         self.indptr, width_for(self._nnz), n, m, self.block_cols, b_lo, b_hi,
                         flat)

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        Yt = np.zeros((self.shape[1], Xt.shape[1]), np.float64)
        if self._nnz:
            self._check(kg.rmatmul(*self.part.kernel_args(), *self.gap_part.kernel_args(),
                                   float_view(self.part.symbols, self.dtype),
                                   self.gap_part.symbols, self.indptr, width_for(self._nnz),
                                   self.block_cols, Xt, Yt))
        return Yt
