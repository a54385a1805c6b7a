"""``sham`` (sparse HAM): CSC whose nonzero values are canonical-Huffman coded.

Row indices are packed at ``ceil(log2 n)`` bits and the ``m + 1`` column pointers at
``ceil(log2(nnz + 1))`` bits; the nonzero values, in column-major order, form a Huffman stream
cut into blocks of ``block_cols`` columns with 4 lanes each. Components: ``symbols``,
``code_counts``, ``stream``, ``offsets``, ``indptr``, ``indices``; meta ``nnz``, ``block_cols``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.bits import check_packed, pack, width_for, words_for
from ..coding.huffman import (
    HuffmanPart,
)
from ..coding.information import information_bits
from ..kernels import compressed as kc
from ..kernels import entropy as ke
from .base import Matrix, PsiBounds, bits_dtype, component, float_view, register
from .blocked import BLOCK_SYMBOLS, NonzeroStream, nonzero_part
from .psi import psi_sham, psi_sham_corrected


@register
class SHAM(NonzeroStream):
    format = "sham"
    options = ("block_symbols", "max_code_length")

    def __init__(self, shape, dtype, part: HuffmanPart, indptr: np.ndarray, indices: np.ndarray,
                 nnz: int, block_cols: int):
        super().__init__(shape, dtype, part, indptr, nnz, block_cols)
        self.indices = indices

    @classmethod
    def _encode(cls, M: Matrix, block_symbols: int = BLOCK_SYMBOLS,
                max_code_length: int | None = None) -> SHAM:
        part, ptr, nnz, bc, _ = nonzero_part(M, cls.format, block_symbols, max_code_length)
        rows = M.csc[1]
        return cls(M.shape, M.dtype, part, pack(ptr, width_for(nnz)),
                   pack(rows, width_for(M.shape[0] - 1)), nnz, bc)

    @classmethod
    def _positions_nbytes(cls, M: Matrix, nblocks: int, max_code_length: int | None) -> int:
        """The row indices, packed."""
        return 8 * words_for(M.nnz * width_for(M.shape[0] - 1))

    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("symbols", "code_counts", "stream", "offsets", "indptr", "indices")

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> SHAM:
        fmt = cls.format
        n, m = shape
        nnz, bc, indptr, part = cls._stored_part(shape, dtype, meta, comps)
        indices = component(comps, "indices", fmt, np.uint64)
        iw = width_for(n - 1)
        check_packed(indices, nnz, iw, f"{fmt}: indices")
        status.check(fmt, kc.check_compressed(indptr, width_for(nnz), m, indices, iw, n, nnz))
        return cls(shape, dtype, part, indptr, indices, nnz, bc)

    def psi_bounds(self, M: Matrix) -> PsiBounds:
        """[M21]'s formula as printed, corrected (one row index per nonzero), and ours."""
        d = M.nonzero_distinct
        if d is None:
            return PsiBounds()
        (n, m), B, q, k = self.shape, 8 * self.dtype.itemsize, M.nnz, max(d.k, 1)
        return PsiBounds(psi_sham(n, m, q, k, B), psi_sham_corrected(n, m, q, k, B),
                         psi_sham_corrected(n, m, q, d.k, B, "stored"))

    def own_limit(self, M: Matrix) -> float | None:
        """The zero-order information of the nonzero values, plus the fixed-width rows."""
        return information_bits(M.nonzero_counts) + M.nnz * width_for(M.shape[0] - 1)

    def components(self) -> dict[str, np.ndarray]:
        return {**self.part.stored(), "indptr": self.indptr, "indices": self.indices}

    def layout(self) -> dict[str, tuple[str, int]]:
        n, m = self.shape
        return {**self.part.layout(),
                "indptr": ("pointers", (m + 1) * width_for(self._nnz)),
                "indices": ("indices", self._nnz * width_for(n - 1))}

    def _pos_args(self) -> tuple:
        return (self.indptr, width_for(self._nnz), self.indices, width_for(self.shape[0] - 1))

    def _decode_blocks(self, b_lo: int, b_hi: int, flat: np.ndarray) -> int:
        n, m = self.shape
        return ke.sham_decode(*self.part.kernel_args(),
                              self.part.symbols.view(bits_dtype(self.dtype)), *self._pos_args(),
                              n, m, self.block_cols, b_lo, b_hi, flat)

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        Yt = np.zeros((self.shape[1], Xt.shape[1]), np.float64)
        self._check(ke.sham_rmatmul(*self.part.kernel_args(),
                                    float_view(self.part.symbols, self.dtype), *self._pos_args(),
                                    self.block_cols, Xt, Yt))
        return Yt
