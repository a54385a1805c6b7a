"""``cer``: Compressed Entropy Row (Wiedemann, Müller, Samek, "Compact and computationally
efficient representation of deep neural networks", IEEE TNNLS 31(3), 2020).

The paper's matrix has one row per output, so ``cer`` stores W transposed: row j of the format
is column j of W. The distinct values, ordered by falling frequency, form ``omega``; the most
frequent one (usually 0) is implicit. For each row, the input indices of every other entry
are grouped by value in ``omega`` order, groups for ranks 1 .. (the largest rank the row
holds), empty groups included. Components: ``omega`` (values, raw), ``col_index`` (packed at
ceil(log2 n) bits), ``omega_ptr`` (group starts, packed), ``row_ptr`` (each row's first group,
packed); meta ``explicit`` (entries not equal to the implicit value) and ``groups``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.bits import check_packed, pack, unpack, width_for, words_for
from ..errors import FormatError
from ..kernels import shared_values as ks
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
from .psi import psi_cer, psi_cser

_NO_INDEX = np.zeros(0, np.uint64)


@register
class CER(Encoded):
    format = "cer"
    padded = True  # CER keeps empty groups; CSER stores each group's rank instead

    def __init__(self, shape, dtype, omega: np.ndarray, col_index: np.ndarray,
                 omega_ptr: np.ndarray, row_ptr: np.ndarray, omega_index: np.ndarray,
                 explicit: int, groups: int):
        super().__init__(shape, dtype)
        self.omega = omega
        self.col_index = col_index
        self.omega_ptr = omega_ptr
        self.row_ptr = row_ptr
        self.omega_index = omega_index
        self.explicit = explicit
        self.groups = groups

    # ---- encoding
    @staticmethod
    def _ranks(M: Matrix, fmt: str) -> tuple[Any, np.ndarray]:
        """Distinct values and their frequency ranks (ties: smaller bit pattern first)."""
        d = M.require_distinct("all", fmt)
        order = np.argsort(-d.counts, kind="stable")
        rank = np.empty(d.k, np.int64)
        rank[order] = np.arange(d.k)
        return d, rank

    @classmethod
    def _widths(cls, n: int, k: int, q: int, groups: int) -> tuple[int, int, int, int]:
        oiw = 0 if cls.padded else width_for(k - 1)
        return width_for(n - 1), width_for(q), width_for(groups), oiw

    @classmethod
    def _encode(cls, M: Matrix, **opts: Any) -> CER:
        d, rank = cls._ranks(M, cls.format)
        n, m = M.shape
        q, groups = ks.group_sizes(d.symbols, rank, n, m, cls.padded)
        col_index, omega_ptr, row_ptr, omega_index = ks.build_groups(
            d.symbols, rank, n, m, cls.padded, q, groups)
        cw, pw, rw, oiw = cls._widths(n, d.k, q, groups)
        omega = d.values[np.argsort(rank)].view(M.dtype)
        return cls(M.shape, M.dtype, omega, pack(col_index, cw), pack(omega_ptr, pw),
                   pack(row_ptr, rw), _NO_INDEX if cls.padded else pack(omega_index, oiw),
                   int(q), int(groups))

    @classmethod
    def size_of(cls, M: Matrix, **opts: Any) -> int | None:
        d = M.all_distinct
        if d is None:
            return None
        d, rank = cls._ranks(M, cls.format)
        n, m = M.shape
        q, groups = ks.group_sizes(d.symbols, rank, n, m, cls.padded)
        cw, pw, rw, oiw = cls._widths(n, d.k, q, groups)
        return (d.k * M.dtype.itemsize + 8 * words_for(q * cw) + 8 * words_for((groups + 1) * pw)
                + 8 * words_for((m + 1) * rw) + 8 * words_for(groups * oiw))

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        """The values (omega), and a row index for every entry not equal to the most frequent value
        (at least ``size - max(zeros, nnz - k + 1)`` entries, with k the distinct nonzero
        values: no value is more frequent than that)."""
        k = M.nonzero_k_at_least
        n = M.shape[0]
        explicit = M.size - max(M.size - M.nnz, M.nnz - k + 1)
        return k * M.dtype.itemsize + max(explicit, 0) * width_for(n - 1) // 8

    # ---- storage
    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        names = ("omega", "col_index", "omega_ptr", "row_ptr")
        return names if cls.padded else names + ("omega_index",)

    def _meta(self) -> dict[str, Any]:
        return {"explicit": self.explicit, "groups": self.groups}

    def psi_bounds(self, M: Matrix) -> PsiBounds:
        """No published closed form: ours, with the groups at their worst."""
        d = M.all_distinct
        if d is None or not d.k:
            return PsiBounds()
        (n, m), B = self.shape, 8 * self.dtype.itemsize
        implicit_q = n * m - int(d.counts.max(initial=0))  # entries other than the commonest
        return PsiBounds(None, None,
                         (psi_cer if self.padded else psi_cser)(n, m, implicit_q, d.k, B))

    def components(self) -> dict[str, np.ndarray]:
        comps = {"omega": self.omega, "col_index": self.col_index,
                 "omega_ptr": self.omega_ptr, "row_ptr": self.row_ptr}
        if not self.padded:
            comps["omega_index"] = self.omega_index
        return comps

    def layout(self) -> dict[str, tuple[str, int]]:
        n, m = self.shape
        cw, pw, rw, oiw = self._widths(n, self.omega.shape[0], self.explicit, self.groups)
        out = {"omega": ("codebook", 8 * self.omega.nbytes),
               "col_index": ("indices", self.explicit * cw),
               "omega_ptr": ("pointers", (self.groups + 1) * pw),
               "row_ptr": ("pointers", (m + 1) * rw)}
        if not self.padded:
            out["omega_index"] = ("payload", self.groups * oiw)
        return out

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> CER:
        fmt = cls.format
        n, m = shape
        omega = component(comps, "omega", fmt, dtype)
        k = omega.shape[0]
        if k > n * m or (k == 0) != (n * m == 0):
            raise FormatError(f"{fmt}: {k} values for a {n}x{m} matrix")
        if np.unique(omega.view(bits_dtype(dtype))).shape[0] != k:
            raise FormatError(f"{fmt}: omega repeats a value")
        q = meta_int(meta, "explicit", fmt, 0, n * m)
        max_groups = q if not cls.padded else m * max(k - 1, 0)
        groups = meta_int(meta, "groups", fmt, 0, max_groups)
        cw, pw, rw, oiw = cls._widths(n, k, q, groups)
        col_index = component(comps, "col_index", fmt, np.uint64)
        omega_ptr = component(comps, "omega_ptr", fmt, np.uint64)
        row_ptr = component(comps, "row_ptr", fmt, np.uint64)
        check_packed(col_index, q, cw, f"{fmt}: col_index")
        check_packed(omega_ptr, groups + 1, pw, f"{fmt}: omega_ptr")
        check_packed(row_ptr, m + 1, rw, f"{fmt}: row_ptr")
        omega_index = _NO_INDEX
        if not cls.padded:
            omega_index = component(comps, "omega_index", fmt, np.uint64)
            check_packed(omega_index, groups, oiw, f"{fmt}: omega_index")
        code = ks.check_groups(row_ptr, rw, omega_ptr, pw, col_index, cw, omega_index, oiw,
                               cls.padded, n, m, k, q, groups)
        status.check(fmt, code)
        return cls(shape, dtype, omega, col_index, omega_ptr, row_ptr, omega_index, q, groups)

    # ---- computation
    def _args(self) -> tuple:
        n = self.shape[0]
        cw, pw, rw, oiw = self._widths(n, self.omega.shape[0], self.explicit, self.groups)
        return (self.row_ptr, rw, self.omega_ptr, pw, self.col_index, cw, self.omega_index, oiw,
                self.padded)

    @property
    def nnz(self) -> int:
        """Entries whose bit pattern is not +0.0, from the group sizes (nothing decoded)."""
        n, m = self.shape
        bits = self.omega.view(bits_dtype(self.dtype))
        zero = np.flatnonzero(bits == 0)
        if zero.size == 0:
            return n * m
        if zero[0] == 0:
            return self.explicit
        _, pw, _, _ = self._widths(n, self.omega.shape[0], self.explicit, self.groups)
        sizes = np.diff(unpack(self.omega_ptr, pw, self.groups + 1).astype(np.int64))
        return n * m - int(sizes[self._group_ranks() == zero[0]].sum())

    def _group_ranks(self) -> np.ndarray:
        """The rank of every group (CER: its position within its row, plus one)."""
        n, m = self.shape
        _, _, rw, oiw = self._widths(n, self.omega.shape[0], self.explicit, self.groups)
        if not self.padded:
            return unpack(self.omega_index, oiw, self.groups).astype(np.int64)
        starts = unpack(self.row_ptr, rw, m + 1).astype(np.int64)
        per_row = np.diff(starts)
        return np.arange(self.groups) - np.repeat(starts[:-1], per_row) + 1

    def decode_columns(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._column_range(start, stop)
        n = self.shape[0]
        bits = bits_dtype(self.dtype)
        out = np.empty((stop - start, n), bits)
        if out.size:
            ks.decode(*self._args(), self.omega.view(bits), n, start, stop, out)
        return np.ascontiguousarray(out.T).view(self.dtype)

    def decode(self) -> np.ndarray:
        return self.decode_columns(0, self.shape[1])

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        Yt = np.zeros((self.shape[1], Xt.shape[1]), np.float64)
        if Yt.size:
            ks.rmatmul(*self._args(), float_view(self.omega, self.dtype), Xt, Yt)
        return Yt
