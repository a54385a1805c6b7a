import itertools

import numpy as np
import pytest
from dahuffman import HuffmanCodec
from hypothesis import given
from hypothesis import strategies as st

from sparsecodec.coding import huffman as hf
from sparsecodec.errors import EncodeError, FormatError

counts_st = st.lists(st.integers(1, 10**6), min_size=2, max_size=300)


def cost(counts, lengths):
    return int(np.dot(np.asarray(counts, np.int64), np.asarray(lengths, np.int64)))


def kraft(lengths):
    mx = int(max(lengths))
    return sum(1 << (mx - int(ln)) for ln in lengths) / (1 << mx)


# counts growing like Fibonacci numbers or powers of two make the unlimited Huffman code as
# deep as the alphabet is long: past MAX_CODE_LENGTH from 26 symbols on
_skewed = st.builds(lambda n, base, noise: [int(base ** i) + noise for i in range(n)],
                    st.integers(2, 40), st.sampled_from([1.618, 2.0, 2.5]),
                    st.integers(0, 3))


@given(st.one_of(counts_st, _skewed))
def test_lengths_are_optimal_against_dahuffman(counts):
    lengths = hf.code_lengths(np.array(counts))
    freq = dict(enumerate(counts))
    # eof = an existing symbol: dahuffman then codes exactly our alphabet
    table = HuffmanCodec.from_frequencies(freq, eof=0).get_code_table()
    oracle = sum(counts[s] * table[s][0] for s in freq)
    assert lengths.max() <= hf.MAX_CODE_LENGTH and kraft(lengths) == 1.0
    if max(table[s][0] for s in freq) <= hf.MAX_CODE_LENGTH:  # the limit does not bind
        assert cost(counts, lengths) == oracle
    else:  # it binds: a limited code costs more than the unlimited optimum
        assert cost(counts, lengths) > oracle


def test_skewed_counts_reach_the_limited_branch():
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    table = HuffmanCodec.from_frequencies(dict(enumerate(fib)), eof=0).get_code_table()
    assert max(v[0] for v in table.values()) > hf.MAX_CODE_LENGTH
    test_lengths_are_optimal_against_dahuffman.hypothesis.inner_test(fib)


def brute_force_limited(counts, limit):
    best = None
    for lens in itertools.product(range(1, limit + 1), repeat=len(counts)):
        if sum(2.0 ** -ln for ln in lens) <= 1.0:
            c = cost(counts, lens)
            best = c if best is None or c < best else best
    return best


@given(st.lists(st.integers(1, 1000), min_size=2, max_size=6), st.integers(3, 5))
def test_length_limited_is_optimal_by_brute_force(counts, limit):
    if len(counts) > 1 << limit:
        return
    lengths = hf.code_lengths(np.array(counts), max_length=limit)
    assert lengths.max() <= limit
    assert cost(counts, lengths) == brute_force_limited(counts, limit)
    assert kraft(lengths) == 1.0


def test_limit_binds_on_fibonacci_counts():
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    free = hf.code_lengths(np.array(fib[:30]), max_length=24)
    assert free.max() <= 24
    unlimited = hf._huffman_lengths_sorted(np.array(sorted(fib[:30]), np.int64))
    assert unlimited.max() == 29  # the limit really binds here
    for limit in (5, 8, 12, 24):
        ln = hf.code_lengths(np.array(fib[:30]), max_length=limit)
        assert ln.max() <= limit and kraft(ln) == 1.0
        assert cost(fib[:30], ln) >= cost(fib[:30], unlimited)


def test_degenerate_alphabets():
    assert hf.code_lengths(np.array([7])).tolist() == [0]
    assert hf.code_lengths(np.array([], np.int64)).shape == (0,)
    with pytest.raises(EncodeError):
        hf.code_lengths(np.array([1, 1, 1]), max_length=1)
    with pytest.raises(EncodeError):
        hf.code_lengths(np.array([0, 1]))


def test_canonical_codes_are_prefix_free_and_sorted():
    counts = np.array([50, 1, 1, 2, 20, 20, 5, 3])
    code = hf.CanonicalCode.from_lengths(hf.code_lengths(counts))
    words = [format(int(code.codes[s]), f"0{int(code.lengths[s])}b") for s in range(len(counts))]
    for a, b in itertools.permutations(words, 2):
        assert not b.startswith(a)
    again = hf.CanonicalCode.from_counts(code.counts)
    assert np.array_equal(again.lengths, np.sort(code.lengths))


@pytest.mark.parametrize("counts, message", [
    ([0, 1, 3], "over-subscribed"),      # 1/2 + 3/4 > 1
    ([0, 1, 0, 1], "incomplete"),         # 1/2 + 1/8 < 1
    ([2], "exactly one"),
    ([1, 2], "length-0"),
    ([0, 2, 0], "nonzero last"),
    ([0] * 26 + [1], "exceed"),
])
def test_bad_code_counts_are_rejected(counts, message):
    with pytest.raises(FormatError, match=message):
        hf.check_code_counts(np.array(counts, np.uint32))


def encode_decode(symbols, freq_k, block_starts, max_length=hf.MAX_CODE_LENGTH):
    freq = np.bincount(symbols, minlength=freq_k)
    present = freq > 0
    remap = np.cumsum(present) - 1
    syms = remap[symbols].astype(np.int32)
    values = np.flatnonzero(present)
    part = hf.HuffmanPart.encode(values, freq[present], syms, block_starts, max_length)
    dec = hf.decode_stream(part.words, part.lane_off, block_starts, part.tables)
    return part, part.symbols[dec]


@given(st.lists(st.integers(0, 40), max_size=3000), st.data())
def test_stream_round_trip_with_any_blocks(symbols, data):
    symbols = np.array(symbols, np.int64)
    n = len(symbols)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=8)))
    starts = np.array([0, *cuts, n], np.int64)
    part, out = encode_decode(symbols, 41, starts)
    assert np.array_equal(out, symbols)
    freq = np.bincount(symbols)
    freq = freq[freq > 0]
    assert int(part.lane_off[-1]) == hf.stream_bits(freq, hf.code_lengths(freq))


def test_long_codes_take_the_slow_path():
    rng = np.random.default_rng(3)
    # geometric-like counts over 400 symbols: code lengths reach 20+, past the 11-bit table
    counts = np.maximum(1, (2.0 ** (20 - np.arange(400) / 18)).astype(np.int64))
    symbols = rng.permutation(np.repeat(np.arange(400), counts))[:200_000]
    starts = np.array([0, 70_001, 140_003, len(symbols)], np.int64)
    part, out = encode_decode(symbols, 400, starts)
    assert part.tables.maxlen > hf.TABLE_BITS
    assert np.array_equal(out, symbols)
    part, out = encode_decode(symbols, 400, starts, max_length=12)
    assert part.tables.maxlen == 12
    assert np.array_equal(out, symbols)


def test_single_symbol_costs_no_bits():
    part, out = encode_decode(np.full(1000, 5), 6, np.array([0, 500, 1000]))
    assert part.words.shape[0] == 0 and np.all(out == 5)


@given(st.integers(0, 10_000), st.integers(1, 63))
def test_corrupt_offsets_are_detected(pos, delta):
    rng = np.random.default_rng(pos)
    symbols = rng.integers(0, 30, 5000)
    starts = np.array([0, 2500, 5000], np.int64)
    part, _ = encode_decode(symbols, 30, starts)
    lane = part.lane_off.copy()
    i = 1 + pos % (len(lane) - 2)
    lane[i] = min(lane[i] + delta, lane[i + 1])
    if lane[i] == part.lane_off[i]:
        return
    with pytest.raises(FormatError):
        hf.decode_stream(part.words, lane, starts, part.tables)
