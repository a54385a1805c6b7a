"""``csr`` and ``csc``: compressed sparse rows / columns with bit-packed pointers and indices.

Values are stored raw in the matrix dtype (no codebook); pointers at ``ceil(log2(nnz + 1))``
bits and indices at ``ceil(log2(inner))`` bits, so only the values cost full width. CSC is
CSR of the transpose; one class serves both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.bits import check_packed, pack, width_for, words_for
from ..errors import FormatError
from ..kernels import compressed as kc
from .base import Encoded, Matrix, PsiBounds, bits_dtype, component, register, widened
from .psi import psi_csc, psi_csc_packed


class _Compressed(Encoded):
    by_row: bool  # True: CSR (outer = rows), False: CSC (outer = columns)

    def __init__(self, shape, dtype, values: np.ndarray, indptr: np.ndarray, indices: np.ndarray):
        super().__init__(shape, dtype)
        self.values = values
        self.indptr = indptr
        self.indices = indices

    # (outer, inner) extents
    @classmethod
    def _extents(cls, shape: tuple[int, int]) -> tuple[int, int]:
        return (shape[0], shape[1]) if cls.by_row else (shape[1], shape[0])

    @classmethod
    def _structure(cls, M: Matrix):
        return M.csr if cls.by_row else M.csc

    @classmethod
    def _encode(cls, M: Matrix, **opts: Any) -> _Compressed:
        ptr, idx, vals = cls._structure(M)
        outer, inner = cls._extents(M.shape)
        nnz = int(vals.shape[0])
        return cls(M.shape, M.dtype, vals.view(M.dtype),
                   pack(ptr, width_for(nnz)), pack(idx, width_for(inner - 1)))

    @classmethod
    def size_of(cls, M: Matrix, **opts: Any) -> int:
        outer, inner = cls._extents(M.shape)
        nnz = M.nnz
        return (nnz * M.dtype.itemsize + 8 * words_for((outer + 1) * width_for(nnz))
                + 8 * words_for(nnz * width_for(inner - 1)))

    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("values", "indptr", "indices")

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> _Compressed:
        fmt = cls.format
        outer, inner = cls._extents(shape)
        values = component(comps, "values", fmt, dtype)
        indptr = component(comps, "indptr", fmt, np.uint64)
        indices = component(comps, "indices", fmt, np.uint64)
        nnz = values.shape[0]
        if nnz > shape[0] * shape[1]:
            raise FormatError(f"{fmt}: {nnz} stored values exceed the {shape} matrix")
        pw, iw = width_for(nnz), width_for(inner - 1)
        check_packed(indptr, outer + 1, pw, f"{fmt}: indptr")
        check_packed(indices, nnz, iw, f"{fmt}: indices")
        if kc.has_zero(values.view(bits_dtype(dtype))):
            raise FormatError(f"{fmt}: a stored value is +0.0 (zeros are never stored)")
        code = kc.check_compressed(indptr, pw, outer, indices, iw, inner, nnz)
        status.check(fmt, code)
        return cls(shape, dtype, values, indptr, indices)

    def psi_bounds(self, M: Matrix) -> PsiBounds:
        """[M21]'s CSC formula (for CSR with n and m swapped), and ours with packed indices."""
        inner, outer = self._extents(self.shape)[::-1]
        B, q = 8 * self.dtype.itemsize, M.nnz
        return PsiBounds(psi_csc(inner, outer, q, B), None, psi_csc_packed(inner, outer, q, B))

    def components(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "indptr": self.indptr, "indices": self.indices}

    def layout(self) -> dict[str, tuple[str, int]]:
        outer, inner = self._extents(self.shape)
        return {"values": ("payload", 8 * self.values.nbytes),
                "indptr": ("pointers", (outer + 1) * width_for(self.nnz)),
                "indices": ("indices", self.nnz * width_for(inner - 1))}

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    def _args(self) -> tuple:
        outer, inner = self._extents(self.shape)
        return (self.indptr, width_for(self.nnz), self.indices, width_for(inner - 1))

    def decode(self) -> np.ndarray:
        outer, inner = self._extents(self.shape)
        bits = bits_dtype(self.dtype)
        flat = np.zeros(outer * inner, bits)
        kc.decode(*self._args(), self.values.view(bits), outer, inner, flat)
        out = flat.view(self.dtype).reshape(outer, inner)
        return out if self.by_row else out.T

    def _compute_values(self) -> np.ndarray:
        # numba has no float16 arithmetic: widen those values (nnz, not the dense matrix)
        return widened(self.values, np.float32) if self.dtype.itemsize == 2 else self.values

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        Yt = np.zeros((self.shape[1], Xt.shape[1]), np.float64)
        if self.by_row:
            kc.csr_rmatmul(*self._args(), self._compute_values(), Xt, Yt, kc.scatter_tasks())
        else:
            kc.csc_rmatmul(*self._args(), self._compute_values(), Xt, Yt)
        return Yt


@register
class CSR(_Compressed):
    """Components ``values`` (row-major nonzeros), ``indptr`` (n + 1 packed), ``indices``."""

    format = "csr"
    by_row = True


@register
class CSC(_Compressed):
    """Components ``values`` (column-major nonzeros), ``indptr`` (m + 1 packed), ``indices``."""

    format = "csc"
    by_row = False
