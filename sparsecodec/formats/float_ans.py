"""``float_ans``: unquantized floats, losslessly, in fewer bytes than their raw bits.

The entropy of a trained weight sits in its exponent: the mantissa bits below the top few are
close to random, the sign nearly so. Each entry is cut into a head (exponent and the top
``head_bits`` mantissa bits) that is rANS-coded, shifted by a per-row and per-column octave
so that one table fits rows and columns of different scales, and a raw tail (sign and low
mantissa bits), bit-packed. Blocks of whole columns are independent streams: they decode in
parallel, and any column range decodes alone. The model and the layout are in
``kernels/floats.py`` and ``formats/float_ans.md``.

Holds float16, bfloat16 (``ml_dtypes.bfloat16``, stored as itself), float32 and float64, bit
for bit: NaN payloads, -0.0, subnormals and infinities included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import status
from ..coding.rans import cumulative, quantize_freqs
from ..errors import FormatError, OptionError
from ..kernels import floats as kf
from ..kernels import simd, threads
from .base import MATRIX_DTYPES, Encoded, Matrix, bits_dtype, component, meta_int, register, widened
from .blocked import block_range, block_starts, check_coder_options, dense_block_cols

# (exponent bits E, mantissa bits P) of each dtype
FIELDS = {"float16": (5, 10), "bfloat16": (8, 7), "float32": (8, 23), "float64": (11, 52)}
MAX_HEAD_BITS = 4
SHIFTS = ("none", "rows", "cols", "both")
BLOCK_SYMBOLS_FLOAT = 1 << 17
FIT_SAMPLE = 256  # entries a row or column mean of the exponent fit reads, at least
CHOICE_SAMPLE = 1 << 18  # entries whose keys choose the head width and the axes, at least
STATES_64_FROM = 1 << 20  # entries from which a matrix's blocks have 64 rANS states
MIN_BLOCK_COLS = 64  # a row segment of a block: 256 bytes of float32, 128 of 16-bit values


def default_block_cols(shape: tuple[int, int]) -> int:
    """Columns per block by default: ``BLOCK_SYMBOLS_FLOAT`` entries or more, at least
    ``MIN_BLOCK_COLS``, and a multiple of the vector width (the vector value loop takes
    blocks whose width is one); all the columns when they are fewer."""
    n, m = shape
    lanes = kf.TAIL_LANES
    bc = max(MIN_BLOCK_COLS, -(-BLOCK_SYMBOLS_FLOAT // max(n, 1)))
    return max(1, min(max(m, 1), -(-bc // lanes) * lanes))


def states_for(count: int) -> int:
    """rANS states per block: 64 in a matrix of ``STATES_64_FROM`` entries or more (its
    decoder's rANS pass runs four vectors of states, about 30% faster than two, for 128 more
    flushed bytes a block: 0.05 points of a 16-bit matrix's full block), else 32."""
    return 64 if count >= STATES_64_FROM else 32


def key_range(E: int, t: int) -> tuple[int, int]:
    """The smallest key and the count of keys a head width ``t`` can give."""
    lo = -(kf.SHIFT_RANGE << t)
    return lo, (1 << (E + t)) + 2 * (kf.SHIFT_RANGE << t)


def tails_dtype(dtype: np.dtype) -> type[np.unsignedinteger]:
    """The words of the tails: 32 bits, 64 for float64 (a tail spans at most two)."""
    return np.uint64 if dtype.itemsize == 8 else np.uint32


def tail_words(tailed: np.ndarray, w: int, dtype: np.dtype) -> np.ndarray:
    """The words each block's tails take (``kernels.floats.tail_words``): ``TAIL_LANES``
    lanes of ceil(ceil(tailed / TAIL_LANES) * w / word bits) words."""
    return kf.tail_words(np.asarray(tailed, np.int64), w,
                         8 * np.dtype(tails_dtype(dtype)).itemsize)


def block_entries(n: int, m: int, bc: int) -> np.ndarray:
    """The entries of each block of ``bc`` columns."""
    return np.diff(block_starts(n, m, bc, None))


def offsets(row_shift: np.ndarray, col_shift: np.ndarray, shape: tuple[int, int]
            ) -> tuple[np.ndarray, np.ndarray]:
    """The per-row and per-column offsets the kernels read: the stored ones, zeros for an
    axis that is not stored."""
    return (row_shift if row_shift.size else np.zeros(shape[0], np.int8),
            col_shift if col_shift.size else np.zeros(shape[1], np.int8))


def zero_symbols(zeros: int) -> np.ndarray:
    """The symbols of +0.0 and -0.0 for a ``zeros`` meta (bit 0: +0.0 present, bit 1:
    -0.0): they come first in the table; -1 for an absent one."""
    plus = 0 if zeros & 1 else -1
    minus = (1 if zeros & 1 else 0) if zeros & 2 else -1
    return np.array([plus, minus], np.int64)


class _Model:
    """The encoder's choice for one matrix: head width, shift axes, symbols and frequencies,
    and the entries with tails in each block."""

    def __init__(self, t: int, shift: str, r: np.ndarray, c: np.ndarray, keys: np.ndarray,
                 counts: np.ndarray, zeros: np.ndarray, sb: int, tailed: np.ndarray,
                 index: np.ndarray):
        self.t, self.shift, self.r, self.c, self.sb = t, shift, r, c, sb
        self.tailed = tailed
        self.index = index  # every entry's key index, in block order (kernels.key_counts)
        self.zeros = int(zeros[0] > 0) | (int(zeros[1] > 0) << 1)  # +0.0, -0.0 present
        self.keys = keys
        allc = np.concatenate([zeros[zeros > 0], counts]).astype(np.int64)
        self.freq = quantize_freqs(allc, sb) if allc.size else allc
        self.nsym = int(allc.size)


def _fit(M: Matrix) -> tuple[np.ndarray, np.ndarray, int, int]:
    E, P = FIELDS[M.dtype.name]
    n, m = M.shape
    return kf.exponent_fit(M.bits, P, E, max(1, m // FIT_SAMPLE), max(1, n // FIT_SAMPLE))


def choose(M: Matrix, head_bits: int | None, shift: str | None, bc: int) -> _Model:
    """The head width and shift axes with the fewest estimated bytes (entropy of the keys,
    the tails, the table and the offsets), or the ones asked for. One pass over a sample of
    rows counts the keys for every choice of axes at the widest head (narrower heads merge
    them); a pass over every entry then counts the chosen model's keys, writes each entry's
    key index and counts the entries with tails in each block of ``bc`` columns."""
    E, P = FIELDS[M.dtype.name]
    n, m = M.shape
    nb = 8 * M.dtype.itemsize
    r, c, rows_used, cols_used = _fit(M)
    t_max = min(MAX_HEAD_BITS, P)
    ts = range(t_max + 1) if head_bits is None else [head_bits]
    shifts = SHIFTS if shift is None else (shift,)
    top = max(ts)
    lo_top, size_top = key_range(E, top)
    # the choice reads every step-th row (all of them up to CHOICE_SAMPLE entries); the
    # counts of the chosen model are then taken over every entry
    step = max(1, n * m // CHOICE_SAMPLE)
    by_axes, zeros = kf.key_histograms(M.bits[::step], P, nb, top, r[::step], c, lo_top,
                                       size_top, simd.VECTOR)
    scale = n * m / max(1, -(-n // step) * m)  # entries per sampled entry
    extra = np.array([(n if sh in ("rows", "both") else 0) + (m if sh in ("cols", "both") else 0)
                      for sh in SHIFTS], np.float64)
    costs = kf.choice_costs(by_axes, zeros, P, top, n * m, scale, extra)
    for axes, sh in enumerate(SHIFTS):
        if sh not in shifts or (shift is None and ((sh in ("rows", "both") and rows_used < 2)
                                                   or (sh in ("cols", "both")
                                                       and cols_used < 2))):
            costs[axes] = np.inf
    costs[:, [t for t in range(top + 1) if t not in ts]] = np.inf
    if not np.isfinite(costs).any():
        raise OptionError(f"float_ans: head_bits={head_bits} gives more than 2^15 symbols")
    best_axes, best_t = np.unravel_index(int(np.argmin(costs)), costs.shape)
    sh = SHIFTS[int(best_axes)]
    t = int(best_t)
    rr = r if sh in ("rows", "both") else np.zeros(0, np.int8)
    cc = c if sh in ("cols", "both") else np.zeros(0, np.int8)
    lo, size = key_range(E, t)
    keys = np.empty(n * m, np.uint16)
    counts, zeros, tailed = kf.key_counts(M.bits, P, nb, t, *offsets(rr, cc, M.shape), lo, size,
                                          bc, keys, simd.VECTOR)
    used = np.flatnonzero(counts)
    nsym = used.size + int(np.count_nonzero(zeros))
    if nsym > 1 << 15:
        raise OptionError(f"float_ans: head_bits={t} gives more than 2^15 symbols")
    return _Model(t, sh, rr, cc, used + lo, counts[used], zeros, kf.scale_bits_for(n * m, nsym),
                  tailed, keys)


def _encode_table(model: _Model) -> np.ndarray:
    keys = model.keys
    deltas = (np.concatenate([[2 * abs(int(keys[0])) + (int(keys[0]) < 0)], np.diff(keys) - 1])
              if keys.size else np.zeros(0, np.int64))
    values = np.concatenate([deltas, model.freq - 1]).astype(np.int64)
    out = np.zeros(5 * values.size, np.uint8)
    return out[:kf.put_varints(values, out, 0)].copy()


@register
class FloatANS(Encoded):
    """Components: ``table`` (uint8: the keys and frequencies as varints), ``row_shift`` and
    ``col_shift`` (int8, quarter octaves; empty when unused), ``words`` (uint16: the rANS
    streams of the blocks), ``word_ptr`` (uint64: where each block's words start, and the
    end), ``tails`` (uint32, uint64 for float64: each block's tails in 16 lanes of words,
    then 16 spare words) and ``tail_ptr`` (uint64: where each block's tails start, and the
    end)."""

    format = "float_ans"
    options = ("head_bits", "shift", "block_symbols")
    dtypes = MATRIX_DTYPES

    def __init__(self, shape, dtype, t: int, sb: int, nsym: int, zeros: int,
                 block_cols: int, states: int, table: np.ndarray, keys: np.ndarray,
                 freq: np.ndarray, row_shift: np.ndarray, col_shift: np.ndarray,
                 words: np.ndarray, word_ptr: np.ndarray, tails: np.ndarray,
                 tail_ptr: np.ndarray):
        super().__init__(shape, dtype)
        self.t, self.sb, self.nsym, self.zeros = t, sb, nsym, zeros
        self.block_cols, self.states = block_cols, states
        self.table, self.keys, self.freq = table, keys, freq
        self.row_shift, self.col_shift = row_shift, col_shift
        self.words, self.word_ptr = words, word_ptr
        self.tails, self.tail_ptr = tails, tail_ptr
        self._zero_counts: tuple[int, int] | None = None
        # decoding tables (kernels/floats.py): per slot, freq | (slot - cum) << 16, the
        # symbol, and the symbol's key << L (for the vector value loop); per symbol, what
        # the scalar value loop adds (key << L, or a zero's bits) and whether it has a tail
        # (all ones) or not (0). A zero class's key is its sign.
        _, P = FIELDS[self.dtype.name]
        nb = 8 * self.dtype.itemsize
        L = P - t
        self._symt = np.repeat(np.arange(nsym, dtype=np.uint16), freq)
        cum = cumulative(freq)[:-1] if nsym else np.zeros(0, np.int64)
        bias = np.arange(self._symt.size, dtype=np.int64) - cum[self._symt]
        self._fb = (np.asarray(freq, np.int64)[self._symt] | (bias << 16)).astype(np.uint32)
        signs = [s for s in (0, 1) if zeros >> s & 1]
        zero = np.zeros(nsym, np.int64)
        zero[:len(signs)] = 1
        allkeys = np.concatenate([np.array(signs, np.int64), keys]).astype(np.int64)
        self._vbase = np.where(zero == 1, allkeys << (nb - 1), allkeys << L).astype(np.int64) \
            .view(np.uint64)
        self._nzm = np.where(zero == 1, 0, -1).astype(np.int64).view(np.uint64)
        # the vector value loops (values of at most 32 bits): per slot, key << L, and for a
        # zero class a value whose top bit stays set whatever octave is added (|octave| <=
        # 2^29): a zero that reached the loop for blocks without zeros would be rejected
        self._vslot = (np.where(zero == 1, 0xC0000000, (allkeys << L) & 0xFFFFFFFF)[self._symt]
                       .astype(np.uint32) if nb <= 32 else np.zeros(0, np.uint32))
        # the slots of the zero classes (they come first), and of +0.0
        nzero = len(signs)
        self._zslots = np.array([int(np.sum(freq[:nzero])),
                                 int(freq[0]) if zeros & 1 else 0], np.int64)
        self._r, self._c = offsets(row_shift, col_shift, self.shape)

    # ---- encoding
    @classmethod
    def _check_options(cls, M: Matrix, head_bits: Any, shift: Any, block_symbols: Any) -> None:
        _, P = FIELDS[M.dtype.name]
        if head_bits is not None and (isinstance(head_bits, bool)
                                      or not isinstance(head_bits, (int, np.integer))
                                      or not 0 <= head_bits <= min(MAX_HEAD_BITS, P)):
            raise OptionError(f"float_ans: head_bits must be an integer in "
                              f"0..{min(MAX_HEAD_BITS, P)} or None, found {head_bits!r}")
        if shift is not None and shift not in SHIFTS:
            raise OptionError(f"float_ans: shift must be one of {SHIFTS} or None, "
                              f"found {shift!r}")
        if block_symbols is not None:
            check_coder_options(cls.format, block_symbols, None)

    @classmethod
    def _encode(cls, M: Matrix, head_bits: int | None = None, shift: str | None = None,
                block_symbols: int | None = None) -> FloatANS:
        """Encoded once per matrix and options: ``size_of`` and ``encode`` share it."""
        cls._check_options(M, head_bits, shift, block_symbols)
        memo = M.memo.setdefault(cls.format, {})
        key = (head_bits, shift, block_symbols)
        if key not in memo:
            memo[key] = cls._encode_now(M, head_bits, shift, block_symbols)
        return memo[key]

    @classmethod
    def _encode_now(cls, M: Matrix, head_bits: int | None, shift: str | None,
                    block_symbols: int | None) -> FloatANS:
        n, m = M.shape
        E, P = FIELDS[M.dtype.name]
        nb = 8 * M.dtype.itemsize
        bc = (default_block_cols(M.shape) if block_symbols is None
              else dense_block_cols(n, m, block_symbols))
        model = choose(M, head_bits, shift, bc)
        t, sb = model.t, model.sb
        per_block = block_entries(n, m, bc)
        nblocks = per_block.size
        lo, size = key_range(E, t)
        nzero = bin(model.zeros).count("1")
        freq = model.freq.astype(np.int64)
        cum = cumulative(freq)[:-1] if freq.size else np.zeros(0, np.int64)
        # per key index (and size + sign for the zero classes): its symbol's freq | cum << 16
        fck = np.zeros(size + 2, np.uint32)
        fck[model.keys - lo] = (freq | (cum << 16))[nzero:]
        for sign, sym in enumerate(zero_symbols(model.zeros)):
            if sym >= 0:
                fck[size + sign] = freq[sym] | (cum[sym] << 16)
        scratch_off = np.zeros(nblocks + 1, np.int64)
        states = states_for(n * m)
        np.cumsum(per_block + 2 * states, out=scratch_off[1:])
        scratch = np.empty(int(scratch_off[-1]), np.uint16)
        used = np.zeros(nblocks, np.int64)
        with threads.for_work(n * m * 8):  # serial when small or when the cores are busy
            kf.encode_blocks(model.index, fck, sb, n, m, bc, scratch, scratch_off, used,
                             states, simd.VECTOR)
        del model.index
        words = np.empty(int(used.sum()), np.uint16)
        word_ptr = np.zeros(nblocks + 1, np.uint64)
        kf.compact(scratch, scratch_off, used, words, word_ptr)
        del scratch
        tail_ptr = np.zeros(nblocks + 1, np.uint64)
        np.cumsum(tail_words(model.tailed, P - t + 1, M.dtype), out=tail_ptr[1:])
        tails = np.zeros(int(tail_ptr[-1]) + kf.TAIL_LANES, tails_dtype(M.dtype))
        with threads.for_work(n * m * 8):
            kf.pack_tails(M.bits, P, nb, t, bc, tails, tail_ptr, model.tailed, simd.VECTOR)
        return cls(M.shape, M.dtype, t, sb, model.nsym, model.zeros, bc, states,
                   _encode_table(model), model.keys, freq, model.r, model.c, words, word_ptr,
                   tails, tail_ptr)

    @classmethod
    def size_of(cls, M: Matrix, head_bits: int | None = None, shift: str | None = None,
                block_symbols: int | None = None) -> int | None:
        if M.dtype.name not in cls.dtypes:
            return None
        return cls._encode(M, head_bits, shift, block_symbols).nbytes

    @classmethod
    def lower_bound(cls, M: Matrix) -> int:
        """The tails of the entries that are not +-0.0: their sign and their mantissa bits
        below the widest head."""
        _, P = FIELDS.get(M.dtype.name, (0, 0))
        tailed = int(np.count_nonzero(M.bits << np.array(1, M.bits.dtype)))
        return tailed * (P - min(MAX_HEAD_BITS, P) + 1) // 8

    # ---- storage
    @classmethod
    def component_names(cls, meta: dict[str, Any]) -> tuple[str, ...]:
        return ("table", "row_shift", "col_shift", "words", "word_ptr", "tails", "tail_ptr")

    def components(self) -> dict[str, np.ndarray]:
        return {"table": self.table, "row_shift": self.row_shift,
                "col_shift": self.col_shift, "words": self.words, "word_ptr": self.word_ptr,
                "tails": self.tails, "tail_ptr": self.tail_ptr}

    def _meta(self) -> dict[str, Any]:
        return {"head_bits": self.t, "scale_bits": self.sb, "nsym": self.nsym,
                "zeros": self.zeros, "block_cols": self.block_cols, "states": self.states}

    def layout(self) -> dict[str, tuple[str, int]]:
        n, m = self.shape
        _, P = FIELDS[self.dtype.name]
        return {"table": ("codebook", 8 * self.table.nbytes),
                "row_shift": ("codebook", 8 * self.row_shift.nbytes),
                "col_shift": ("codebook", 8 * self.col_shift.nbytes),
                "words": ("payload", 16 * self.words.size),
                "word_ptr": ("pointers", 64 * self.word_ptr.size),
                "tails": ("payload", (n * m - sum(self._zeros())) * (P - self.t + 1)),
                "tail_ptr": ("pointers", 64 * self.tail_ptr.size)}

    def _zeros(self) -> tuple[int, int]:
        """How many entries are +0.0 and -0.0: from the rANS pass alone (no values made), and
        with no pass at all when the table has no zero class."""
        if self._zero_counts is None:
            if self.zeros == 0:
                self._zero_counts = (0, 0)
            else:
                nblocks = self.word_ptr.size - 1
                counts = np.zeros((nblocks, 2), np.int64)
                st = np.zeros(max(nblocks, 1), np.int64)
                n, m = self.shape
                with threads.for_work(n * m * 8):
                    bad = kf.zero_counts(self.words, self.word_ptr, self._fb, self.sb, n, m,
                                         self.block_cols, self._zslots, counts, st,
                                         self.states, simd.VECTOR)
                status.check_block(self.format, int(bad))
                self._zero_counts = (int(counts[:, 0].sum()), int(counts[:, 1].sum()))
        return self._zero_counts

    @classmethod
    def _from_parts(cls, shape, dtype, meta, comps) -> FloatANS:
        fmt = cls.format
        n, m = shape
        E, P = FIELDS[dtype.name]
        t = meta_int(meta, "head_bits", fmt, 0, min(MAX_HEAD_BITS, P))
        sb = meta_int(meta, "scale_bits", fmt, 1, 15)
        nsym = meta_int(meta, "nsym", fmt, 0, 1 << sb)
        zeros = meta_int(meta, "zeros", fmt, 0, 3)
        nzero = bin(zeros).count("1")
        bc = meta_int(meta, "block_cols", fmt, 1, max(m, 1))
        states = meta_int(meta, "states", fmt, 32, 64)
        if states not in simd.STATES:
            raise FormatError(f"{fmt}: states must be one of {simd.STATES}, found {states}")
        if (n * m > 0) != (nsym > 0) or nsym < nzero:
            raise FormatError(f"{fmt}: {nsym} symbols for a {shape} matrix")
        table = component(comps, "table", fmt, np.uint8)
        nkeys = nsym - nzero
        values = np.zeros(nkeys + nsym, np.int64)
        if kf.get_varints(table, values.size, values) != table.size:
            raise FormatError(f"{fmt}: the table does not hold {nsym} symbols exactly")
        keys = np.zeros(nkeys, np.int64)
        if nkeys:
            first = int(values[0])
            keys[0] = -(first >> 1) if first & 1 else first >> 1
            keys[1:] = values[1:nkeys] + 1
            keys = np.cumsum(keys)
        lo, size = key_range(E, t)
        if nkeys and (keys[0] < lo or keys[-1] >= lo + size):
            raise FormatError(f"{fmt}: a key is out of range")
        freq = values[nkeys:] + 1
        if nsym and int(freq.sum()) != 1 << sb:
            raise FormatError(f"{fmt}: the frequencies do not sum to 2^{sb}")
        row_shift = component(comps, "row_shift", fmt, np.int8)
        col_shift = component(comps, "col_shift", fmt, np.int8)
        if row_shift.size not in (0, n) or col_shift.size not in (0, m):
            raise FormatError(f"{fmt}: the shifts must be empty or one per row / column")
        per_block = block_entries(n, m, bc)
        nblocks = per_block.size
        word_ptr = component(comps, "word_ptr", fmt, np.uint64, length=nblocks + 1)
        words = component(comps, "words", fmt, np.uint16)
        if (word_ptr[0] != 0 or np.any(np.diff(word_ptr.astype(np.int64)) < 0)
                or int(word_ptr[-1]) != words.size):
            raise FormatError(f"{fmt}: word_ptr does not run from 0 up to the words' count")
        tail_ptr = component(comps, "tail_ptr", fmt, np.uint64, length=nblocks + 1)
        tails = component(comps, "tails", fmt, tails_dtype(dtype))
        tw = np.diff(tail_ptr.astype(np.int64))
        if (tail_ptr[0] != 0 or np.any(tw < 0)
                or np.any(tw > tail_words(per_block, P - t + 1, dtype))
                or int(tail_ptr[-1]) + kf.TAIL_LANES != tails.size):
            raise FormatError(f"{fmt}: tail_ptr does not run from 0 up to the tails' words")
        return cls(shape, dtype, t, sb, nsym, zeros, bc, states, table, keys, freq, row_shift,
                   col_shift, words, word_ptr, tails, tail_ptr)

    # ---- decoding and products
    @property
    def nnz(self) -> int:
        n, m = self.shape
        return n * m - self._zeros()[0]

    def _decode_into(self, b_lo: int, b_hi: int, out: np.ndarray, rs: int) -> None:
        """Decode blocks [b_lo, b_hi) into the flat bit array ``out``, a row-major array of
        ``rs`` columns (:func:`kernels.floats.decode_blocks`)."""
        n, m = self.shape
        _, P = FIELDS[self.dtype.name]
        st = np.zeros(max(b_hi - b_lo, 1), np.int64)
        bad = kf.decode_blocks(self.words, self.word_ptr, self.tails, self.tail_ptr,
                               self._fb, self._symt, self._vslot, self._zslots, self._vbase,
                               self._nzm, self.sb, P, 8 * self.dtype.itemsize, self.t, self._r,
                               self._c, self.zeros == 0, n, m, self.block_cols, b_lo, b_hi, out,
                               rs, st, self.states, simd.VECTOR)
        status.check_block(self.format, int(bad))

    def decode(self) -> np.ndarray:
        return self.decode_columns(0, self.shape[1])

    def decode_columns(self, start: int, stop: int) -> np.ndarray:
        start, stop = self._column_range(start, stop)
        n, m = self.shape
        b_lo, b_hi, c_lo, c_hi = block_range(start, stop, self.block_cols, m)
        width = c_hi - c_lo
        flat = np.empty(n * width, bits_dtype(self.dtype))
        with threads.for_work(flat.size * 8):
            self._decode_into(b_lo, b_hi, flat, width)
        out = flat.view(self.dtype).reshape(n, width)
        return out if (c_lo, c_hi) == (start, stop) else out[:, start - c_lo:stop - c_lo].copy()

    def _rmatmul(self, Xt: np.ndarray) -> np.ndarray:
        """A group of blocks (two per thread) decoded in parallel into a row-major scratch of
        their bits, then widened to float64 a block at a time and multiplied by BLAS: the
        memory it takes is the group's bits and one block's float64 copy, never the matrix."""
        n, m = self.shape
        Yt = np.zeros((m, Xt.shape[1]), np.float64)
        if n * m == 0:
            return Yt
        bc = self.block_cols
        nblocks = -(-m // bc)
        group = max(1, 2 * threads.numba.get_num_threads())
        flat = np.empty(group * bc * n, bits_dtype(self.dtype))
        for g0 in range(0, nblocks, group):
            g1 = min(nblocks, g0 + group)
            c0, c1 = g0 * bc, min(m, g1 * bc)
            part = flat[:(c1 - c0) * n]
            with threads.for_work((c1 - c0) * n * 8):
                self._decode_into(g0, g1, part, c1 - c0)
            rows = part.view(self.dtype).reshape(n, c1 - c0)
            for a in range(c0, c1, bc):
                b = min(c1, a + bc)
                np.matmul(widened(rows[:, a - c0:b - c0]).T, Xt, out=Yt[a:b])
        return Yt

