"""``coo``: coordinate lists, row-major sorted, both coordinates bit-packed at minimum width."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.bits import check_packed, pack, width_for, words_for
from ..errors import FormatError
from ..kernels import compressed as kc
from .base import Encoded, Matrix, PsiBounds, bits_dtype, component, register, widened
from .psi import psi_of, words_bits


@register
class COO(Encoded):
    """Components ``values``, ``row`` (packed at ceil(log2 n) bits), ``col`` (ceil(log2 m))."""

    format = "coo"

    def __init__(self, shape, dtype, values: np.ndarray, row: np.ndarray, col: np.ndarray):
        super().__init__(shape, dtype)
        self.values = values
        self.row = row
        self.col = col

    @classmethod
    def _encode(cls, M: Matrix, **opts: Any) -> COO:
        ptr, cols, vals = M.csr
        n, m = M.shape
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(ptr))
        return cls(M.shape, M.dtype, vals.view(M.dtype), pack(rows, width_for(n - 1)),
                   pack(cols, width_for(m - 1)))

    @classmethod
    def size_of(cls, M: Matrix, **opts: Any) -> int:
        n, m = M.shape
        nnz = M.nnz
        return (nnz * M.dtype.itemsize + 8 * words_for(nnz * width_for(n - 1))
                + 8 * words_for(nnz * width_for(m - 1)))

    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("values", "row", "col")

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> COO:
        fmt = cls.format
        n, m = shape
        values = component(comps, "values", fmt, dtype)
        row = component(comps, "row", fmt, np.uint64)
        col = component(comps, "col", fmt, np.uint64)
        nnz = values.shape[0]
        if nnz > n * m:
            raise FormatError(f"{fmt}: {nnz} stored values exceed the {shape} matrix")
        check_packed(row, nnz, width_for(n - 1), f"{fmt}: row")
        check_packed(col, nnz, width_for(m - 1), f"{fmt}: col")
        if kc.has_zero(values.view(bits_dtype(dtype))):
            raise FormatError(f"{fmt}: a stored value is +0.0 (zeros are never stored)")
        code = kc.check_coordinates(row, width_for(n - 1), col, width_for(m - 1), n, m, nnz)
        status.check(fmt, code)
        return cls(shape, dtype, values, row, col)

    def psi_bounds(self, M: Matrix) -> PsiBounds:
        """Three B-bit words per nonzero as usually charged, and ours: raw values and packed
        row and column indices."""
        (n, m), B, q = self.shape, 8 * self.dtype.itemsize, M.nnz
        stored = q * B + words_bits(q * width_for(n - 1)) + words_bits(q * width_for(m - 1))
        return PsiBounds(psi_of(3 * q * B, n, m, B), None, psi_of(stored, n, m, B))

    def components(self) -> dict[str, np.ndarray]:
        return {"values": self.values, "row": self.row, "col": self.col}

    def layout(self) -> dict[str, tuple[str, int]]:
        n, m = self.shape
        return {"values": ("payload", 8 * self.values.nbytes),
                "row": ("indices", self.nnz * width_for(n - 1)),
                "col": ("indices", self.nnz * width_for(m - 1))}

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    def _args(self) -> tuple:
        n, m = self.shape
        return (self.row, width_for(n - 1), self.col, width_for(m - 1))

    def decode(self) -> np.ndarray:
        n, m = self.shape
        bits = bits_dtype(self.dtype)
        flat = np.zeros(n * m, bits)
        kc.coo_decode(*self._args(), self.values.view(bits), m, flat)
        return flat.view(self.dtype).reshape(n, m)

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        Yt = np.zeros((self.shape[1], Xt.shape[1]), np.float64)
        vals = widened(self.values, np.float32) if self.dtype.itemsize == 2 else self.values
        kc.coo_rmatmul(*self._args(), vals, Xt, Yt, kc.scatter_tasks())
        return Yt
