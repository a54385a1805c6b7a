"""The ``scaled`` format: a scale per column times shared levels coded by another format; exact
for every matrix, smallest on per-channel quantized layers, checked on read."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import same_bits

import sparsecodec as sc
from sparsecodec.formats.base import Matrix
from sparsecodec.formats.scaled import Scaled
from sparsecodec.quantize import dependent, integer


def channel_layer(seed=0, n=128, m=96):
    """Gaussian weights whose columns (outputs) differ in scale, as trained layers do."""
    r = np.random.default_rng(seed)
    return (r.standard_normal((n, m)) * 0.02 * np.exp(r.normal(0, 0.7, (1, m)))).astype(
        np.float32)


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_per_channel_integers_are_smallest_as_scaled(bits):
    Q = integer(channel_layer(), bits, per="column").values
    enc = sc.encode(Q, format="scaled")
    assert enc.nx == 0 and same_bits(enc.decode(), Q)
    assert enc.levels.format == "sham_ans" and enc.levels.grid is not None  # integer levels
    assert len(enc.levels.symbols) <= 2 ** bits
    sizes = sc.sizes(Q)
    assert sizes["scaled"] == enc.nbytes == min(sizes.values())
    assert enc.nbytes < 0.5 * sizes["sham_ans"]  # sham_ans tables every column's values
    assert sc.encode(Q).format == "scaled"


def test_given_scales_and_any_codebook():
    """Scales given, levels from a shared non-integer codebook: the levels are the codebook
    (shared by every column) and the matrix comes back exactly."""
    r = np.random.default_rng(1)
    book = np.sort(r.standard_normal(12)).astype(np.float32)
    s = np.exp(r.normal(0, 1, 40))
    idx = r.integers(0, 12, (64, 40))
    Q = (book[idx].astype(np.float64) * s[None, :]).astype(np.float32)
    enc = Scaled.encode(Q, scales=s)
    assert same_bits(enc.decode(), Q) and enc.nx == 0
    assert len(enc.levels.symbols) <= 12 + 6  # (a level may need its float neighbour)
    with pytest.raises(sc.OptionError, match="scales"):
        Scaled.encode(Q, scales=s[:-1])
    with pytest.raises(sc.OptionError, match="scales"):
        Scaled.encode(Q, scales=-s)


def test_exceptions_and_products():
    Q = integer(channel_layer(2, 50, 30), 6, per="column").values
    Q[3, 4] = np.nan
    Q[7, 4] = np.inf
    Q[0, 0] = -0.0
    Q[:, 9] = np.float32(0.1234567)  # a column of one value: on its own grid
    enc = sc.encode(Q, format="scaled")
    assert enc.nx == 2 and same_bits(enc.decode(), Q)
    assert same_bits(enc.decode_columns(3, 10), Q[:, 3:10])
    X = np.random.default_rng(3).standard_normal((4, 50))
    Qf = np.nan_to_num(Q.astype(np.float64), nan=0.0, posinf=0.0)
    Qf[3, 4] = Qf[7, 4] = 0.0
    keep = [j for j in range(30) if j != 4]
    with np.errstate(invalid="ignore"):
        got = X @ enc
    assert np.allclose(got[:, keep], X @ Qf[:, keep], rtol=1e-12, atol=1e-12)
    assert np.isnan(got[:, 4]).all()
    back = Scaled.from_components(enc.meta, enc.components())
    assert same_bits(back.decode(), Q)


def test_unquantized_weights_are_never_chosen_and_still_exact():
    W = np.random.default_rng(4).standard_normal((40, 30)).astype(np.float32)
    M = Matrix(W)
    assert Scaled.size_within(M, 40 * 30 * 4) is None  # not even coded: past dense
    enc = Scaled.encode(W)
    assert same_bits(enc.decode(), W) and (enc.scales == 1).all()
    assert sc.encode(W).format != "scaled"


def test_inner_option():
    Q = integer(channel_layer(5, 64, 32), 4, per="column").values
    for inner in ("ham", "index_map", "dense", "sham"):
        enc = Scaled.encode(Q, inner=inner)
        assert enc.levels.format == inner and same_bits(enc.decode(), Q)
        back = Scaled.from_components(enc.meta, enc.components())
        assert same_bits(back.decode(), Q)
    with pytest.raises(sc.OptionError, match="itself"):
        Scaled.encode(Q, inner="scaled")
    with pytest.raises(sc.OptionError, match="inner"):
        Scaled.encode(Q, inner="nope")


def test_the_dependent_quantizer_per_channel():
    """Per-column steps (``step`` an array) give a per-channel trellis layer whose levels
    keep the machine; scaled stores it with sham_ans's state contexts inside."""
    W = channel_layer(6, 192, 64)
    steps = 0.25 * W.std(axis=0)
    q = dependent(W, steps)
    m = np.rint(q.values / steps[None, :])
    assert same_bits((steps[None, :] * m).astype(np.float32), q.values)
    enc = Scaled.encode(q.values, scales=steps)
    assert enc.nx == 0 and same_bits(enc.decode(), q.values)
    assert enc.levels.gap_model & 8 or enc.levels.value_model & 8


def test_hostile_parts_are_format_errors():
    Q = integer(channel_layer(7, 20, 10), 4, per="column").values
    Q[2, 3] = np.nan  # one exception
    enc = Scaled.encode(Q)
    meta, comps = dict(enc.meta), dict(enc.components())
    for bad in ({**meta, "inner": "scaled"}, {**meta, "inner": "nope"}, {**meta, "inner": 3},
                {**meta, "inner_format": "ham"}):
        with pytest.raises(sc.FormatError):
            Scaled.from_components(bad, comps)
    for scales in (-comps["scales"], comps["scales"] * np.nan, comps["scales"][:-1],
                   np.where(np.arange(10) == 0, -0.0, comps["scales"])):
        with pytest.raises(sc.FormatError, match="scale"):
            Scaled.from_components(meta, {**comps, "scales": scales})
    # an exception over a nonzero level: the levels of another column's entry
    other = Scaled.encode(np.where(np.isnan(Q), np.float32(1.0) * Q[0, 3], Q))
    with pytest.raises(sc.FormatError, match="level"):
        Scaled.from_components(meta, {**comps, **{k: v for k, v in other.components().items()
                                                  if k.startswith("inner_")}})
    with pytest.raises(sc.FormatError, match="levels"):
        Scaled.from_components(meta, {**comps, "inner_stream": comps["inner_stream"][:-1]})


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), bits=st.sampled_from([3, 5, 8]),
       dtype=st.sampled_from([np.float16, np.float32, np.float64]))
def test_per_channel_layers_round_trip_in_every_dtype(seed, bits, dtype):
    r = np.random.default_rng(seed)
    n, m = r.integers(1, 40, 2)
    W = (r.standard_normal((n, m)) * np.exp(r.normal(0, 1, (1, m)))).astype(dtype)
    W[r.random(W.shape) < 0.3] = 0
    Q = integer(W, bits, per="column").values
    enc = Scaled.encode(Q)
    assert same_bits(enc.decode(), Q)
    back = Scaled.from_components(enc.meta, enc.components())
    assert same_bits(back.decode(), Q)
    x = r.standard_normal(n)
    assert np.allclose(x @ back, x @ Q.astype(np.float64), rtol=1e-9, atol=1e-12)


def test_the_spec_example():
    W = np.array([[0.5, 0.0], [-1.0, 0.75]], np.float32)
    enc = Scaled.encode(W, scales=[0.5, 0.25])
    assert enc.levels.decode().tolist() == [[1, 0], [-2, 3]] and enc.nx == 0
    assert enc.scales.tolist() == [0.5, 0.25] and enc.meta["inner"] == "sham_ans"
    assert enc.components()["xptr"].size == 0 and same_bits(enc.decode(), W)
