"""The rANS primitives that ``sham_ans`` ships (``coding/rans.py``), through the static
order-0 coder built on them: the word stream equals a plain-integer reference coder's, round
trips are exact, the size is the model's cross-entropy, and truncated or corrupted words are
reported, never crash."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsecodec.coding import rans
from sparsecodec.coding import rans_static as rs
from sparsecodec.errors import EncodeError


def code(symbols, nblocks=1, scale_bits=12, k=None):
    k = k or int(symbols.max(initial=0)) + 1
    counts = np.bincount(symbols, minlength=k)
    freq = rans.quantize_freqs(counts, scale_bits)
    cum = rans.cumulative(freq)
    starts = np.linspace(0, symbols.size, nblocks + 1).astype(np.int64)
    words, offsets = rs.encode_blocks(symbols.astype(np.int64), starts, freq, cum, scale_bits)
    return words, offsets, starts, freq, cum


def decode(words, offsets, starts, freq, scale_bits=12):
    out = np.zeros(starts[-1], np.int32)
    bad = rs.decode_blocks(words, offsets, starts, rs.table(freq, scale_bits), scale_bits, out)
    return bad, out


def reference_words(symbols, freq, cum, scale_bits, lanes=4):
    """rANS as in Duda's paper and ryg_rans, with Python integers: 32-bit states in
    [2^16, 2^32), 16-bit renormalization, symbol i on state i % lanes, coded backwards;
    the words in the order the decoder reads them."""
    low = 1 << 16
    states = [low] * lanes
    out = []  # written backwards
    for i in range(len(symbols) - 1, -1, -1):
        s, lane = int(symbols[i]), i % lanes
        x, f = states[lane], int(freq[s])
        while x >= (low >> scale_bits << 16) * f:
            out.append(x & 0xFFFF)
            x >>= 16
        states[lane] = (x // f << scale_bits) + x % f + int(cum[s])
    for lane in range(lanes - 1, -1, -1):
        out += [states[lane] & 0xFFFF, states[lane] >> 16]
    return out[::-1]


def test_quantize_freqs():
    f = rans.quantize_freqs(np.array([1000, 1, 0, 3, 50]), 12)
    assert f.sum() == 4096 and f[2] == 0 and (f[[0, 1, 3, 4]] >= 1).all()
    assert rans.quantize_freqs(np.array([0, 7]), 4).tolist() == [0, 16]
    assert rans.quantize_freqs(np.ones(16, np.int64), 4).tolist() == [1] * 16
    with pytest.raises(EncodeError, match="17 symbols do not fit a 4-bit"):
        rans.quantize_freqs(np.ones(17, np.int64), 4)


def test_cumulative_works_per_row():
    f = np.array([[1, 2, 0], [0, 0, 3]])
    assert rans.cumulative(f).tolist() == [[0, 1, 3, 3], [0, 0, 0, 3]]
    assert rans.cumulative(np.array([2, 2])).tolist() == [0, 2, 4]


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 600), k=st.integers(1, 300),
       skew=st.floats(0.0, 3.0), scale_bits=st.sampled_from([9, 12, 16]))
def test_words_equal_the_reference_coder(seed, n, k, skew, scale_bits):
    rng = np.random.default_rng(seed)
    p = np.exp(-skew * np.arange(k))
    symbols = rng.choice(k, n, p=p / p.sum())
    words, offsets, starts, freq, cum = code(symbols, 1, scale_bits, k=k)
    assert words.tolist() == reference_words(symbols, freq, cum, scale_bits)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 3000), k=st.integers(1, 300),
       skew=st.floats(0.0, 3.0), nblocks=st.integers(1, 7))
def test_round_trip(seed, n, k, skew, nblocks):
    rng = np.random.default_rng(seed)
    p = np.exp(-skew * np.arange(k))
    symbols = rng.choice(k, n, p=p / p.sum())
    words, offsets, starts, freq, cum = code(symbols, nblocks, k=k)
    bad, out = decode(words, offsets, starts, freq)
    assert bad == -1 and np.array_equal(out, symbols)


def test_size_matches_the_model_entropy():
    rng = np.random.default_rng(1)
    p = np.array([0.95, 0.03, 0.015, 0.005])
    symbols = rng.choice(4, 200_000, p=p)
    words, offsets, starts, freq, cum = code(symbols, nblocks=4)
    counts = np.bincount(symbols, minlength=4)
    cross = -(counts * np.log2(freq / 4096)).sum()  # bits the quantized model allows
    assert 16 * words.size <= cross + 4 * (16 * 2 * rans.LANES + 64)
    assert 16 * words.size / symbols.size < 0.36  # Huffman cannot go below 1 bit here
    h0 = -(counts / counts.sum() * np.log2(counts / counts.sum())).sum()
    assert 16 * words.size / symbols.size < 1.01 * h0 + 0.01


def test_an_unused_slot_is_reported():
    symbols = np.array([0, 1, 0, 1] * 50)
    words, offsets, starts, freq, cum = code(symbols)
    # the same words read with a table in which symbol 1 has no slots: a frequency-0 entry
    tab = rans.slot_tables(np.array([[4096, 0]]), np.array([[0, 4096, 4096]]), 12)
    out = np.zeros(symbols.size, np.int32)
    assert rs.decode_blocks(words, offsets, starts, tab, 12, out) == 0


@given(seed=st.integers(0, 2**32 - 1), cut=st.integers(1, 50), flips=st.integers(1, 5))
def test_corrupt_and_truncated_words_never_crash(seed, cut, flips):
    rng = np.random.default_rng(seed)
    symbols = rng.choice(5, 2000, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    words, offsets, starts, freq, cum = code(symbols, nblocks=3)
    short = offsets.copy()
    short[-1] = max(short[-2], short[-1] - cut)
    bad, _ = decode(words[:short[-1]], short, starts, freq)
    assert bad == 2  # the last block lost its tail
    broken = words.copy()
    idx = rng.integers(0, broken.size, flips)
    broken[idx] ^= rng.integers(1, 1 << 16, flips).astype(np.uint16)
    bad, out = decode(broken, offsets, starts, freq)
    assert -1 <= bad < 3 and out.min(initial=0) >= 0 and out.max(initial=0) < 5


@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 8), k=st.integers(1, 40),
       scale_bits=st.integers(6, 14))
def test_row_wise_frequencies_equal_one_row_at_a_time(seed, rows, k, scale_bits):
    """quantize_freqs_rows, which sham_ans sizes its tables with, gives every row exactly
    what quantize_freqs gives it (including rows whose floors overshoot, and empty rows)."""
    rng = np.random.default_rng(seed)
    counts = (rng.pareto(rng.uniform(0.3, 3), (rows, k)) * rng.integers(1, 50)).astype(np.int64)
    counts[rng.random((rows, k)) < rng.uniform(0, 0.8)] = 0
    got = rans.quantize_freqs_rows(counts, scale_bits)
    assert np.array_equal(got, [rans.quantize_freqs(r, scale_bits) for r in counts])
