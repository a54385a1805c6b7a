import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsecodec.coding import bits
from sparsecodec.errors import FormatError


@given(st.integers(0, 64), st.data())
def test_pack_unpack_round_trip(width, data):
    hi = (1 << width) - 1 if width < 64 else (1 << 63) - 1
    vals = np.array(data.draw(st.lists(st.integers(0, hi), max_size=200)), dtype=np.uint64)
    words = bits.pack(vals, width)
    assert words.shape[0] == bits.words_for(len(vals) * width)
    assert np.array_equal(bits.unpack(words, width, len(vals)).view(np.uint64), vals)
    bits.check_packed(words, len(vals), width, "x")  # canonical: passes its own check


@given(st.integers(1, 40), st.lists(st.integers(0, 2**40 - 1), min_size=1, max_size=50),
       st.data())
def test_unpack_slice_matches(width, raw, data):
    vals = np.array([v & ((1 << width) - 1) for v in raw], dtype=np.uint64)
    words = bits.pack(vals, width)
    start = data.draw(st.integers(0, len(vals)))
    count = data.draw(st.integers(0, len(vals) - start))
    assert np.array_equal(bits.unpack(words, width, count, start).view(np.uint64),
                          vals[start:start + count])


def test_pack_bit_order_is_msb_first():
    # 3-bit values 1, 2, 3 -> bits 001 010 011 at the top of the first word
    w = bits.pack(np.array([1, 2, 3]), 3)
    assert int(w[0]) == 0b001010011 << (64 - 9)


def test_pack_rejects_values_too_wide_and_negative():
    with pytest.raises(ValueError):
        bits.pack(np.array([8]), 3)
    with pytest.raises(ValueError):
        bits.pack(np.array([-1]), 3)


def test_check_packed_rejects_wrong_length_and_dirty_padding():
    w = bits.pack(np.arange(10), 4)
    with pytest.raises(FormatError):
        bits.check_packed(w[:-1], 10, 4, "x")
    with pytest.raises(FormatError):
        bits.check_packed(np.append(w, np.uint64(0)), 10, 4, "x")
    dirty = w.copy()
    dirty[-1] |= np.uint64(1)
    with pytest.raises(FormatError, match="padding"):
        bits.check_packed(dirty, 10, 4, "x")


def test_unpack_past_the_end_is_an_error_not_a_read():
    with pytest.raises(FormatError):
        bits.unpack(np.zeros(1, np.uint64), 40, 2)


@given(st.integers(0, 400))
def test_peek_never_reads_outside(p):
    words = np.array([0xFFFFFFFFFFFFFFFF, 0x8000000000000000], dtype=np.uint64)
    v = int(bits.peek64(words, p))
    expect = "".join(format(int(w), "064b") for w in words) + "0" * 500
    assert v == int(expect[p:p + 64], 2)


def test_best_exp_golomb_is_the_cheapest_order_and_the_first_on_a_tie():
    from sparsecodec.coding.bits import best_exp_golomb, exp_golomb_bits

    rng = np.random.default_rng(3)
    for _ in range(200):
        v = np.minimum((rng.pareto(1.0, rng.integers(0, 200)) * 20).astype(np.int64), 1 << 16)
        top = int(rng.integers(0, 33))
        each = [exp_golomb_bits(v, k) for k in range(top + 1)]
        assert best_exp_golomb(v, top) == (int(np.argmin(each)), min(each))
