"""Dependent (trellis-coded) quantization and sham_ans's state contexts: the Viterbi search is
the optimum over its candidates (checked by brute force), the levels obey the state machine,
and sham_ans codes them exactly, with state contexts that pay on trellis output."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import same_bits

import sparsecodec as sc
from sparsecodec.formats.sham_ans import SHAMAns, grid_parities
from sparsecodec.kernels import trellis as kt
from sparsecodec.quantize import dependent

TRANS = [[0, 2], [2, 0], [1, 3], [3, 1]]  # the machine, written out again as the spec has it


def allowed(m, state):
    """Q0 (states 0, 1): even levels; Q1 (states 2, 3): odd levels and zero."""
    return m % 2 == 0 if state < 2 else (m % 2 == 1 or m == 0)


def index(m, state):
    return m // 2 if state < 2 else (m + int(np.sign(m))) // 2


def walk_ok(levels):
    s = 0
    for m in levels:
        if not allowed(int(m), s):
            return False
        s = TRANS[s][index(int(m), s) & 1]
    return True


def rate(s, m, zb, nzb, vb):
    half = (vb.shape[1] - 1) // 2
    if m == 0:
        return zb[s]
    if abs(m) > half:
        return nzb[s] + vb[s >> 1, (half if m > 0 else -half) + half] + 2 * np.log2(abs(m) / half)
    return nzb[s] + vb[s >> 1, m + half]


def candidates(x, u, state):
    """What the search considers: zero and the two nearest levels of the state's quantizer."""
    if x == 0:
        return [0]
    lo = 2 * int(np.floor(u / 2)) if state < 2 else 2 * int(np.floor((u - 1) / 2)) + 1
    return sorted({0, lo, lo + 2})


def brute_force(w, h, step, lam, zb, nzb, vb):
    """The least cost over every path through the candidates (exhaustive)."""
    best = np.inf
    per = [sorted(set(candidates(x, x / step, 0) + candidates(x, x / step, 2))) for x in w]
    for levels in itertools.product(*per):
        s, cost, ok = 0, 0.0, True
        for x, hx, m in zip(w, h, levels, strict=True):
            if m not in candidates(x, x / step, s):
                ok = False
                break
            cost += hx * (x - step * m) ** 2 + lam * rate(s, m, zb, nzb, vb)
            s = TRANS[s][index(m, s) & 1]
        if ok:
            best = min(best, cost)
    return best


def cost_of(levels, w, h, step, lam, zb, nzb, vb):
    s, cost = 0, 0.0
    for x, hx, m in zip(w, h, levels, strict=True):
        cost += hx * (x - step * m) ** 2 + lam * rate(s, int(m), zb, nzb, vb)
        s = TRANS[s][index(int(m), s) & 1]
    return cost


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 6), lam=st.sampled_from([0.0, 0.3, 2.0]))
def test_the_viterbi_search_finds_the_cheapest_path(seed, n, lam):
    r = np.random.default_rng(seed)
    w = r.standard_normal(n) * 3
    w[r.random(n) < 0.2] = 0.0
    h = r.random(n) + 0.1
    zb, nzb = r.random(4) * 3, r.random(4) * 3
    vb = r.random((2, 9)) * 4
    got = kt.levels(w.reshape(1, -1), h.reshape(1, -1), np.ones(1), np.full(1, lam), zb, nzb,
                    vb)[0]
    assert walk_ok(got) and all(m == 0 for m, x in zip(got, w, strict=True) if x == 0)
    assert cost_of(got, w, h, 1.0, lam, zb, nzb, vb) == pytest.approx(
        brute_force(w, h, 1.0, lam, zb, nzb, vb), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("order", ["columns", "rows"])
def test_levels_follow_the_machine_and_zeros_stay_zero(order):
    r = np.random.default_rng(1)
    W = (r.standard_normal((40, 30)) * 0.05).astype(np.float32)
    W[r.random(W.shape) < 0.3] = 0
    step = 0.01
    q = dependent(W, step, order=order)
    m = np.rint(q.values.astype(np.float64) / step).astype(np.int64)
    assert same_bits((step * m).astype(np.float32), q.values)
    lines = m.T if order == "columns" else m
    assert all(walk_ok(line) for line in lines)
    assert not np.any((W == 0) & (q.values != 0))
    assert not np.any(np.signbit(q.values) & (q.values == 0))
    assert q.mse == pytest.approx(np.mean((W.astype(np.float64) - q.values) ** 2))


def test_the_union_grid_beats_either_quantizer_at_lam_zero():
    """With lam = 0 the search minimises the error alone: it never does worse than a path
    that stays in state 0 with even indices (Q0 rounding to multiples of 4 steps, a path the
    machine allows), and in practice far better."""
    r = np.random.default_rng(2)
    W = r.standard_normal((64, 16))
    q = dependent(W, 0.1, lam=0.0)
    coarse = np.rint(W / 0.4) * 0.4
    assert q.mse < 0.5 * np.mean((W - coarse) ** 2)


def test_importance_lowers_the_weighted_error():
    r = np.random.default_rng(3)
    W = r.standard_normal((50, 20))
    h = np.where(r.random(W.shape) < 0.2, 30.0, 0.1)
    plain = dependent(W, 0.3, lam=0.0)
    weighted = dependent(W, 0.3, lam=0.0, importance=h)
    def werr(q):
        return float(np.sum(h * (W - q.values) ** 2))
    assert werr(weighted) < werr(plain)


def test_bad_arguments():
    W = np.ones((3, 3), np.float32)
    for bad in (0, -1.0, np.nan, True):
        with pytest.raises(sc.QuantizeError, match="step"):
            dependent(W, bad)
    with pytest.raises(sc.QuantizeError, match="order"):
        dependent(W, 0.1, order="diagonal")
    with pytest.raises(sc.QuantizeError, match="lam"):
        dependent(W, 0.1, lam=-1.0)
    with pytest.raises(sc.QuantizeError, match="2-D"):
        dependent(np.ones(4), 0.1)
    with pytest.raises(sc.QuantizeError, match="too fine"):
        dependent(W, 1e-9)


def test_grid_parities():
    step = np.float32(0.3)
    m = np.array([-5, -2, -1, 1, 2, 3, 4, 7])
    vals = (np.float64(step) * m).astype(np.float32)
    par = grid_parities(vals)
    assert par is not None
    assert list(par & 1) == [(x // 2) & 1 for x in m]                      # Q0: m = 2k
    assert list(par >> 1) == [((x + int(np.sign(x))) // 2) & 1 for x in m]  # Q1: 2k - sgn k
    assert grid_parities(np.array([0.3, 0.7, 1.1], np.float32)) is None      # no common step
    assert grid_parities(np.array([np.nan], np.float32)) is None


def trellis_layer(seed=0, n=192, m=96, step=0.012):
    W = (np.random.default_rng(seed).standard_normal((n, m)) * 0.05).astype(np.float32)
    return W, dependent(W, step).values


def test_state_contexts_code_trellis_output_exactly_and_pay():
    W, Q = trellis_layer()
    auto = SHAMAns.encode(Q)
    assert auto.gap_model & 8 or auto.value_model & 8  # the encoder's cost search takes them
    assert "symbol_levels" in auto.components()  # the parities follow from the levels
    assert same_bits(auto.decode(), Q)
    plain = SHAMAns.encode(Q, gap_model="rem", value_model="none")
    assert auto.nbytes < 0.97 * plain.nbytes
    x = np.random.default_rng(5).standard_normal(Q.shape[0])
    X = np.random.default_rng(6).standard_normal((3, Q.shape[0]))
    assert np.allclose(x @ auto, x @ Q.astype(np.float64))
    assert np.allclose(X @ auto, X @ Q.astype(np.float64))
    back = SHAMAns.from_components(auto.meta, auto.components())
    assert same_bits(back.decode(), Q)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), order=st.sampled_from(["columns", "rows"]),
       gap=st.sampled_from(["state", "prev+state", "rem+line+state"]),
       value=st.sampled_from(["state", "sig+state", "none"]),
       grid=st.booleans())
def test_forced_state_models_round_trip_any_matrix(seed, order, gap, value, grid):
    r = np.random.default_rng(seed)
    n, m = r.integers(1, 30, 2)
    if grid:
        W = (np.rint(r.standard_normal((n, m)) * 3) * 0.125).astype(np.float32)
    else:  # no common step: parities all zero, the state never leaves 0 and 3
        W = r.standard_normal((n, m)).astype(np.float32)
    W[r.random(W.shape) < 0.4] = 0
    enc = SHAMAns.encode(W, order=order, gap_model=gap, value_model=value, block_symbols=16)
    assert same_bits(enc.decode(), W)
    back = SHAMAns.from_components(enc.meta, enc.components())
    assert same_bits(back.decode(), W)
    x = r.standard_normal(n)
    assert np.allclose(x @ back, x @ W.astype(np.float64))


def test_parities_are_stored_only_with_state_contexts_and_checked():
    W, Q = trellis_layer(1, 64, 32)
    enc = SHAMAns.encode(Q, gap_model="state", value_model="state", block_symbols=64,
                         symbol_table="floats")
    meta, comps = dict(enc.meta), dict(enc.components())
    with pytest.raises(sc.FormatError, match="components"):
        SHAMAns.from_components(meta, {k: v for k, v in comps.items() if k != "parities"})
    with pytest.raises(sc.FormatError, match="components"):
        SHAMAns.from_components({**meta, "gap_model": 0, "value_model": 0}, comps)
    with pytest.raises(sc.FormatError, match="parities"):
        SHAMAns.from_components(meta, {**comps, "parities": comps["parities"][:0]})
    with pytest.raises(sc.FormatError, match="gap_model"):
        SHAMAns.from_components({**meta, "gap_model": 16}, comps)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_corrupt_parities_or_stream_raise_format_error_or_decode_safely(data):
    """Flipped bits in the parities change the contexts a reader walks: the stream then fails
    its checks (FormatError) or decodes to values of the codebook; nothing else escapes."""
    W, Q = trellis_layer(2, 48, 24)
    table = data.draw(st.sampled_from(["floats", "grid"]))
    enc = SHAMAns.encode(Q, gap_model="rem+state", value_model="state", block_symbols=64,
                         symbol_table=table)
    meta, comps = dict(enc.meta), {k: v.copy() for k, v in enc.components().items()}
    name = data.draw(st.sampled_from(["parities" if table == "floats" else "symbol_levels",
                                      "stream", "value_freqs"]))
    raw = comps[name].reshape(-1).view(np.uint8).copy()
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, raw.size - 1))] ^= np.uint8(1 << data.draw(
            st.integers(0, 7)))
    broken = {**comps, name: raw.view(comps[name].dtype)}
    try:
        D = SHAMAns.from_components(meta, broken).decode()
    except sc.FormatError:
        return
    if name != "symbol_levels":  # (other levels are other values)
        assert set(np.unique(D[D != 0]).tolist()) <= set(enc.symbols.tolist())


def test_the_coder_walks_the_quantizers_machine():
    from sparsecodec.kernels import ans_columns as ka
    assert kt.TRANS.tolist() == TRANS
    for s in range(4):
        x = s
        for run in range(6):
            assert ka.after_zeros(s, run) == x
            x = TRANS[x][0]
        for par in range(4):
            assert ka.after_value(s, par) == TRANS[s][(par >> (s >> 1)) & 1]
