"""``index_map`` (IM): every entry as a fixed-width index into a codebook of its k values.

Components: ``codebook`` (the k distinct values in the matrix dtype, ascending bit pattern)
and ``indices`` (n*m indices in column-major order, packed at ``width`` bits, by default
``ceil(log2 k)``). Any entry can be read in O(1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..coding.bits import check_packed, pack, width_for, words_for
from ..errors import EncodeError, FormatError, OptionError
from ..kernels import entropy as ke
from .base import (
    Encoded,
    Matrix,
    PsiBounds,
    bits_dtype,
    component,
    float_view,
    meta_int,
    register,
)
from .psi import psi_index_map


@register
class IndexMap(Encoded):
    format = "index_map"
    options = ("bits",)

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        """The codebook (every distinct value), and an index of ceil(log2 k) bits or more for
        every entry."""
        k = M.nonzero_k_at_least
        return k * M.dtype.itemsize + M.size * max(k - 1, 0).bit_length() // 8

    def __init__(self, shape, dtype, codebook: np.ndarray, indices: np.ndarray, width: int):
        super().__init__(shape, dtype)
        self.codebook = codebook
        self.indices = indices
        self.width = width
        self._nnz: int | None = None

    @classmethod
    def _width(cls, k: int, bits: int | None) -> int:
        need = width_for(k - 1)
        if bits is None:
            return need
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 0 <= bits <= 32:
            raise OptionError(f"index_map: bits must be an integer in 0..32, found {bits!r}")
        if bits < need:
            raise EncodeError(f"index_map: {k} distinct values need {need} bits per index, "
                              f"but bits={bits} holds at most {1 << bits}")
        return int(bits)

    @classmethod
    def _encode(cls, M: Matrix, bits: int | None = None) -> IndexMap:
        d = M.require_distinct("all", cls.format)
        width = cls._width(d.k, bits)
        return cls(M.shape, M.dtype, d.values.view(M.dtype), pack(d.symbols, width), width)

    @classmethod
    def size_of(cls, M: Matrix, bits: int | None = None) -> int | None:
        d = M.all_distinct
        if d is None:
            return None
        return d.k * M.dtype.itemsize + 8 * words_for(M.size * cls._width(d.k, bits))

    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("codebook", "indices")

    def _meta(self) -> dict[str, Any]:
        return {"width": self.width}

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> IndexMap:
        fmt = cls.format
        width = meta_int(meta, "width", fmt, 0, 32)
        codebook = component(comps, "codebook", fmt, dtype)
        indices = component(comps, "indices", fmt, np.uint64)
        k, size = codebook.shape[0], shape[0] * shape[1]
        if (size > 0) != (k > 0) or k > 1 << width:
            raise FormatError(f"{fmt}: a codebook of {k} values does not fit a "
                              f"{shape} matrix with {width}-bit indices")
        cb_bits = codebook.view(bits_dtype(dtype))
        if k > 1 and not np.all(cb_bits[1:] > cb_bits[:-1]):
            raise FormatError(f"{fmt}: codebook bit patterns must be strictly increasing")
        check_packed(indices, size, width, f"{fmt}: indices")
        # width 0 stores nothing and every index is 0: no scan (its count may be huge)
        if size and width and int(ke.im_max_index(indices, width, size)) >= k:
            raise FormatError(f"{fmt}: an index points past the {k}-value codebook")
        return cls(shape, dtype, codebook, indices, width)

    def psi_bounds(self, M: Matrix) -> PsiBounds:
        d = M.all_distinct
        if d is None or not d.k:
            return PsiBounds()
        (n, m), B = self.shape, 8 * self.dtype.itemsize
        return PsiBounds(psi_index_map(n, m, d.k, B), None,
                         psi_index_map(n, m, d.k, B, "stored"))

    def components(self) -> dict[str, np.ndarray]:
        return {"codebook": self.codebook, "indices": self.indices}

    def layout(self) -> dict[str, tuple[str, int]]:
        n, m = self.shape
        return {"codebook": ("codebook", 8 * self.codebook.nbytes),
                "indices": ("payload", n * m * self.width)}

    @property
    def nnz(self) -> int:
        if self._nnz is None:  # entries minus those indexing +0.0, counted on the packed form
            n, m = self.shape
            zero = np.flatnonzero(self.codebook.view(bits_dtype(self.dtype)) == 0)
            zeros = 0
            if zero.size:
                zeros = int(ke.im_count(self.indices, self.width, n, m, int(zero[0])))
            self._nnz = n * m - zeros
        return self._nnz

    def decode(self) -> np.ndarray:
        n, m = self.shape
        bits = bits_dtype(self.dtype)
        flat = np.empty(n * m, bits)
        ke.im_decode(self.indices, self.width, self.codebook.view(bits), n, m, flat)
        return flat.view(self.dtype).reshape(m, n).T

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        Yt = np.zeros((self.shape[1], Xt.shape[1]), np.float64)
        if self.codebook.shape[0]:
            zero = np.flatnonzero(self.codebook.view(bits_dtype(self.dtype)) == 0)
            ke.im_rmatmul(self.indices, self.width, float_view(self.codebook, self.dtype),
                          int(zero[0]) if zero.size else -1, Xt, Yt)
        return Yt
