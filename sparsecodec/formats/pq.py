"""``pq``: product quantization. The input dimension is cut into G = ceil(n / d) groups of d
consecutive rows (the last one padded with zero rows when d does not divide n); each column's
d-long piece of a group, a *sub-vector*, is replaced by the index of a codeword of length d.

Components: ``codebook`` (C x k x d values, flattened; C = 1 for a shared codebook or G for one
per group; float16, float32 or float64, never wider than the matrix dtype so that decoding is
exact) and the G*m codes, column by column (j outer, g inner), either ``indices`` packed at
ceil(log2 k) bits or a canonical Huffman part (``symbols`` = the codeword ids used, as uint32,
``code_counts``, ``stream``, ``offsets``, blocked by columns as in ``ham``). Meta: ``d``, ``k``,
``per_group``, ``codebook_dtype``, ``coding`` ("packed" or "huffman") and, for Huffman,
``block_cols``.

Products use lookup tables (``kernels/pq.py``): never the decoded matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.bits import check_packed, pack, unpack, width_for, words_for
from ..coding.huffman import HuffmanPart, code_lengths, stream_bits, stream_nbytes
from ..errors import EncodeError, FormatError, OptionError
from ..kernels import entropy as ke
from ..kernels import pq as kp
from .base import Encoded, Matrix, PsiBounds, bits_dtype, component, meta_int, register, widened
from .blocked import BLOCK_SYMBOLS, block_starts, check_coder_options, dense_block_cols, limit_for
from .psi import psi_pq

CODINGS = ("auto", "packed", "huffman")
MAX_CODEWORDS = 1 << 16
"""Default limit on distinct sub-vectors when encoding a matrix losslessly."""
_LUT_ENTRIES = 1 << 22  # float64 entries of one lookup-table slab (32 MiB)


def groups_of(n: int, d: int) -> int:
    return -(-n // d) if d else 0


def check_d(d: Any, fmt: str = "pq") -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 1 <= d <= 1 << 16:
        raise OptionError(f"{fmt}: d must be an integer in 1..65536, found {d!r}")
    return int(d)


def sub_vectors(A: np.ndarray, d: int) -> np.ndarray:
    """The (G*m, d) sub-vectors of the (n, m) array ``A``, column by column (zero-padded)."""
    n, m = A.shape
    G = groups_of(n, d)
    padded = np.zeros((G * d, m), A.dtype)
    padded[:n] = A
    return np.ascontiguousarray(padded.T).reshape(m * G, d)


@register
class PQ(Encoded):
    format = "pq"
    options = ("d", "max_codewords", "index_coding", "block_symbols")

    def __init__(self, shape, dtype, d: int, k: int, codebook: np.ndarray, per_group: bool,
                 indices: np.ndarray | None, part: HuffmanPart | None, block_cols: int):
        super().__init__(shape, dtype)
        self.d = d
        self.k = k
        self.codebook = codebook  # flat (C * k * d,)
        self.per_group = per_group
        self.indices = indices
        self.part = part
        self.block_cols = block_cols
        self._nnz: int | None = None

    # ---- construction
    @property
    def groups(self) -> int:
        return groups_of(self.shape[0], self.d)

    @classmethod
    def from_codes(cls, shape: tuple[int, int], dtype: Any, d: int, codebook: np.ndarray,
                   codes: np.ndarray, index_coding: str = "auto",
                   block_symbols: int = BLOCK_SYMBOLS) -> PQ:
        """Build from a codebook of shape (C, k, d) (C = 1 or G) and the G*m codes, column by
        column; ``index_coding`` "packed", "huffman" or "auto" (Huffman when it is at least
        3% smaller: packed codes make faster products)."""
        n, m = shape
        C, k, _ = codebook.shape
        codes = np.ascontiguousarray(codes, np.int64)
        huffman, _, counts, bc = cls._index_coding(codes, k, groups_of(n, d), m, index_coding,
                                                   block_symbols)
        if huffman:
            assert counts is not None
            used = np.flatnonzero(counts)
            remap = np.zeros(k, np.int32)
            remap[used] = np.arange(used.size, dtype=np.int32)
            part = HuffmanPart.encode(used.astype(np.uint32), counts[used],
                                      remap[codes].astype(np.int32),
                                      block_starts(groups_of(n, d), m, bc, None),
                                      limit_for(used.size, None))
            return cls(shape, dtype, d, k, codebook.reshape(-1), C > 1, None, part, bc)
        return cls(shape, dtype, d, k, codebook.reshape(-1), C > 1,
                   pack(codes, width_for(k - 1)), None, 0)

    @classmethod
    def _index_coding(cls, codes: np.ndarray, k: int, G: int, m: int, index_coding: str,
                      block_symbols: int) -> tuple[bool, int, np.ndarray | None, int]:
        """How the codes are stored: (Huffman?, their exact bytes, per-codeword counts when
        Huffman was weighed, block columns). "auto" takes Huffman only when it saves 3%:
        packed codes are read several times faster."""
        if index_coding not in CODINGS:
            raise OptionError(f"pq: index_coding must be one of {CODINGS}, found "
                              f"{index_coding!r}")
        check_coder_options("pq", block_symbols, None)
        bc = dense_block_cols(G, m, block_symbols)
        packed = 8 * words_for(codes.size * width_for(k - 1))
        if index_coding == "packed":
            return False, packed, None, bc
        counts = np.bincount(codes, minlength=k)
        huff = cls._huffman_nbytes(counts[counts > 0], G, m, bc)
        if index_coding == "huffman" or huff < 0.97 * packed:
            return True, huff, counts, bc
        return False, packed, counts, bc

    @staticmethod
    def _huffman_nbytes(counts: np.ndarray, G: int, m: int, block_cols: int) -> int:
        lengths = code_lengths(counts, limit_for(counts.size, None))
        nblocks = -(-m // block_cols) if m else 0
        return stream_nbytes(counts.size, 4, int(lengths.max(initial=0)),
                             stream_bits(counts, lengths), nblocks)

    @classmethod
    def _distinct(cls, M: Matrix, d: int, max_codewords: int) -> tuple[np.ndarray, np.ndarray]:
        V = sub_vectors(M.bits, d)
        if V.shape[0] == 0:
            return np.zeros((0, d), M.bits.dtype), np.zeros(0, np.int64)
        book, inverse = np.unique(V, axis=0, return_inverse=True)
        if book.shape[0] > max_codewords:
            raise EncodeError(f"pq: the matrix has more than {max_codewords} distinct {d}-long "
                              f"sub-vectors ({book.shape[0]}); quantize it first "
                              "(sparsecodec.quantize.product_quantize) or raise max_codewords")
        return book, inverse.reshape(-1)

    @staticmethod
    def _options(d: Any, max_codewords: Any) -> tuple[int, int]:
        d = check_d(4 if d is None else d)
        if isinstance(max_codewords, bool) or not isinstance(max_codewords, (int, np.integer)) \
                or not 1 <= max_codewords <= 1 << 24:
            raise OptionError(f"pq: max_codewords must be an integer in 1..2^24, found "
                              f"{max_codewords!r}")
        return d, int(max_codewords)

    @classmethod
    def _encode(cls, M: Matrix, d: int | None = None, max_codewords: int = MAX_CODEWORDS,
                index_coding: str = "auto", block_symbols: int = BLOCK_SYMBOLS) -> PQ:
        """Lossless: the distinct sub-vectors of W become the codebook (in W's dtype). Without
        ``d``, sub-vectors of 4."""
        d, max_codewords = cls._options(d, max_codewords)
        book, codes = cls._distinct(M, d, max_codewords)
        return cls._encode_from(M, d, book, codes, index_coding, block_symbols)

    @classmethod
    def size_of(cls, M: Matrix, d: int | None = None, max_codewords: int = MAX_CODEWORDS,
                index_coding: str = "auto", block_symbols: int = BLOCK_SYMBOLS) -> int | None:
        """Exact bytes of the lossless encoding; None without ``d`` (so that ``auto`` weighs
        pq only when a sub-vector length is given) or with too many distinct sub-vectors."""
        if d is None:
            return None
        try:
            d, max_codewords = cls._options(d, max_codewords)
            book, codes = cls._distinct(M, d, max_codewords)
        except EncodeError:
            return None
        k = max(book.shape[0], 1)
        _, index_bytes, _, _ = cls._index_coding(codes, k, groups_of(M.shape[0], d), M.shape[1],
                                                 index_coding, block_symbols)
        return k * d * M.dtype.itemsize + index_bytes  # without building the encoding

    @classmethod
    def _encode_from(cls, M: Matrix, d: int, book: np.ndarray, codes: np.ndarray,
                     index_coding: str, block_symbols: int) -> PQ:
        k = max(book.shape[0], 1)
        cb = np.zeros((1, k, d), M.dtype)
        cb[0, :book.shape[0]] = book.view(M.dtype)
        return cls.from_codes(M.shape, M.dtype, d, cb, codes, index_coding, block_symbols)

    # ---- storage
    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        if meta.get("coding") == "huffman":
            return ("codebook", "symbols", "code_counts", "stream", "offsets")
        return ("codebook", "indices")

    def _meta(self) -> dict[str, Any]:
        meta = {"d": self.d, "k": self.k, "per_group": self.per_group,
                "codebook_dtype": self.codebook.dtype.name,
                "coding": "huffman" if self.part is not None else "packed"}
        if self.part is not None:
            meta["block_cols"] = self.block_cols
        return meta

    def psi_bounds(self, M: Matrix) -> PsiBounds:
        """The product-quantization formula; ``stored`` (ours exactly) for packed indices."""
        (n, m), B = self.shape, 8 * self.dtype.itemsize
        args = (n, m, self.d, self.k, B, 8 * self.codebook.dtype.itemsize, self.per_group)
        return PsiBounds(psi_pq(*args), None,
                         psi_pq(*args, dictionary="stored") if self.part is None else None)

    def components(self) -> dict[str, np.ndarray]:
        if self.part is not None:
            return {"codebook": self.codebook, **self.part.stored()}
        assert self.indices is not None
        return {"codebook": self.codebook, "indices": self.indices}

    def layout(self) -> dict[str, tuple[str, int]]:
        out = {"codebook": ("codebook", 8 * self.codebook.nbytes)}
        if self.part is not None:
            return {**out, **self.part.layout()}
        n, m = self.shape
        return {**out, "indices": ("payload", self.groups * m * width_for(self.k - 1))}

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> PQ:
        fmt = cls.format
        n, m = shape
        d = meta_int(meta, "d", fmt, 1, 1 << 16)
        k = meta_int(meta, "k", fmt, 1, 1 << 24)
        per_group = meta.get("per_group")
        if not isinstance(per_group, bool):
            raise FormatError(f"{fmt}: meta 'per_group' must be true or false, found "
                              f"{per_group!r}")
        cb_dtype = meta.get("codebook_dtype")
        if cb_dtype not in ("float16", "float32", "float64") or \
                np.dtype(cb_dtype).itemsize > dtype.itemsize:
            raise FormatError(f"{fmt}: meta 'codebook_dtype' must be a float type no wider than "
                              f"{dtype.name}, found {cb_dtype!r}")
        coding = meta.get("coding")
        if coding not in ("packed", "huffman"):
            raise FormatError(f"{fmt}: meta 'coding' must be 'packed' or 'huffman', found "
                              f"{coding!r}")
        G = groups_of(n, d)
        C = G if per_group else 1
        codebook = component(comps, "codebook", fmt, cb_dtype, length=C * k * d)
        count = G * m
        if coding == "packed":
            indices = component(comps, "indices", fmt, np.uint64)
            width = width_for(k - 1)
            check_packed(indices, count, width, f"{fmt}: indices")
            if count and width and int(ke.im_max_index(indices, width, count)) >= k:
                raise FormatError(f"{fmt}: an index points past the {k} codewords")
            return cls(shape, dtype, d, k, codebook, per_group, indices, None, 0)
        bc = meta_int(meta, "block_cols", fmt, 1, max(m, 1))
        symbols = component(comps, "symbols", fmt, np.uint32)
        if symbols.shape[0] and int(symbols.max()) >= k:
            raise FormatError(f"{fmt}: a Huffman symbol names a codeword past the {k} stored")
        if (count > 0) != (symbols.shape[0] > 0):
            raise FormatError(f"{fmt}: {symbols.shape[0]} symbols for {count} codes")
        part = HuffmanPart.from_stored(symbols, component(comps, "code_counts", fmt, np.uint32),
                                       component(comps, "stream", fmt, np.uint64),
                                       component(comps, "offsets", fmt, np.uint64),
                                       -(-m // bc) if m else 0, fmt)
        return cls(shape, dtype, d, k, codebook, per_group, None, part, bc)

    # ---- computation
    def codes(self) -> np.ndarray:
        """The G*m codeword indices, column by column (validated on the way)."""
        n, m = self.shape
        count = self.groups * m
        if self.part is None:
            assert self.indices is not None
            return unpack(self.indices, width_for(self.k - 1), count).astype(np.int64)
        out = np.empty(count, np.int64)
        bad = kp.unpack_huffman(*self.part.kernel_args(), self.part.symbols,
                                block_starts(self.groups, m, self.block_cols, None), out)
        status.check_block(self.format, bad, part="indices")
        return out

    def _book(self) -> np.ndarray:
        C = self.groups if self.per_group else 1
        return self.codebook.reshape(C, self.k, self.d)

    def decode(self) -> np.ndarray:
        n, m = self.shape
        G, d = self.groups, self.d
        codes = self.codes()
        book = self._book()
        if self.per_group:
            rows = book[np.tile(np.arange(G), m), codes]
        else:
            rows = book[0][codes]
        out = rows.reshape(m, G * d)[:, :n].T.astype(self.dtype)
        return np.ascontiguousarray(out)

    @property
    def nnz(self) -> int:
        if self._nnz is None:
            W = self.decode()
            self._nnz = int(np.count_nonzero(W.view(bits_dtype(self.dtype))))
        return self._nnz

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        n, m = self.shape
        G, d, k = self.groups, self.d, self.k
        b = Xt.shape[1]
        Yt = np.zeros((m, b), np.float64)
        if m == 0 or G == 0 or b == 0:
            return Yt
        Xp = np.zeros((G * d, b), np.float64)
        Xp[:n] = Xt
        Xg = Xp.reshape(G, d, b)
        book = widened(self._book())
        bc = b if k * b <= _LUT_ENTRIES else max(1, _LUT_ENTRIES // k)
        gc = max(1, _LUT_ENTRIES // (k * bc))
        for b0 in range(0, b, bc):
            b1 = min(b, b0 + bc)
            Ysub = np.zeros((m, b1 - b0), np.float64)
            for g0 in range(0, G, gc):
                g1 = min(G, g0 + gc)
                if b1 - b0 == 1:
                    P = kp.tables_vec(book, np.ascontiguousarray(Xg[g0:g1, :, b0]),
                                      self.per_group, g0)
                else:
                    cb = book[g0:g1] if self.per_group else book[0]
                    P = np.ascontiguousarray(np.matmul(cb, Xg[g0:g1, :, b0:b1]))
                if self.part is None:
                    proto = np.zeros(0, np.uint16 if k <= 1 << 16 else np.uint32)
                    kp.gather_packed(self.indices, width_for(k - 1), G, g0, g1, P, Ysub, proto)
                else:
                    bad = kp.gather_huffman(*self.part.kernel_args(), self.part.symbols,
                                            self.block_cols, G, g0, g1, P, Ysub)
                    status.check_block(self.format, bad, part="indices")
            Yt[:, b0:b1] = Ysub
        return Yt
