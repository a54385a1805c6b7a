"""The ``grid`` format (integer codes on per-column grids, exceptions apart) and the
``integer`` quantizer that feeds it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import same_bits

import sparsecodec as sc
from sparsecodec import quantize as qz
from sparsecodec.coding.bits import width_for, words_for
from sparsecodec.errors import FormatError, OptionError, QuantizeError
from sparsecodec.formats import grid as fg
from sparsecodec.formats.base import registry
from sparsecodec.kernels import threads

Grid = registry()["grid"]


@st.composite
def grid_matrices(draw, max_side=40):
    """Matrices made as a quantizer makes them: per-column (or one) scale times integer levels,
    some zeros, in any float dtype; optionally a few planted entries off the grid."""
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    n = draw(st.integers(1, max_side))
    m = draw(st.integers(1, max_side))
    top = draw(st.sampled_from([7, 15, 100, 127]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == np.float16:
        top = min(top, 7)  # float16 keeps 11 bits: s * L rounds far from the grid past that
    per_column = draw(st.booleans())
    scales = np.exp(rng.uniform(-6, 3, m if per_column else 1))
    L = rng.integers(-top, top + 1, (n, m))
    L[rng.random((n, m)) < draw(st.sampled_from([0.0, 0.5, 0.9]))] = 0
    W = (scales * L).astype(dtype)
    planted = draw(st.integers(0, 3))
    for _ in range(planted):
        W[rng.integers(n), rng.integers(m)] = draw(st.sampled_from(
            [-0.0, np.inf, np.nan, 0.123456789, -1e-3]))
    return W, planted, top


@settings(max_examples=60, deadline=None)
@given(grid_matrices())
def test_quantized_matrices_round_trip_with_at_most_the_planted_exceptions(case):
    W, planted, top = case
    enc = sc.encode(W, format="grid")  # 4 bits with exceptions may beat 8 bits without
    assert same_bits(enc.decode(), W)
    # float64: a scale found from a few values may miss the one that made them by an ulp
    slack = W.shape[1] if W.dtype == np.float64 else 0
    assert sc.encode(W, format="grid", code_bits=8).nx <= planted + slack
    if top <= 7:
        assert sc.encode(W, format="grid", code_bits=4).nx <= planted + slack
    again = Grid.from_components(enc.meta, enc.components())
    assert same_bits(again.decode(), W)


@settings(max_examples=40, deadline=None)
@given(grid_matrices(), st.integers(0, 6), st.integers(0, 2**16))
def test_products_match_numpy_on_the_decoded_matrix(case, b, seed):
    W = case[0]
    W = np.where(np.isfinite(W), W, 0).astype(W.dtype)
    enc = sc.encode(W, format="grid")
    rng = np.random.default_rng(seed)
    n = W.shape[0]
    ref = W.astype(np.float64)
    scale = np.abs(ref).sum(axis=0) + 1e-30  # each output's error is relative to sum |w|
    for xdt in (np.float32, np.float64):
        x = rng.standard_normal(n).astype(xdt)
        y = x @ enc
        assert y.dtype == np.result_type(xdt, W.dtype)
        tol = 2e-6 if y.dtype == np.float32 else 1e-12
        assert np.all(np.abs(y - x.astype(np.float64) @ ref) <= tol * scale * np.abs(x).max())
        X = rng.standard_normal((b, n)).astype(xdt)
        Y = X @ enc
        assert Y.shape == (b, W.shape[1]) and Y.dtype == y.dtype
        err = np.abs(Y - X.astype(np.float64) @ ref)
        assert np.all(err <= tol * scale * (np.abs(X).max() if b else 1))


def test_every_path_of_the_product_agrees(monkeypatch):
    """Serial and parallel vector kernels, the BLAS-on-blocks batch path (several scratch
    blocks), odd n with 4-bit codes, and exceptions in every path."""
    rng = np.random.default_rng(1)
    n, m = 1023, 1100  # n * m > PARALLEL_WORK; odd n pads the 4-bit x
    W = qz.integer(rng.standard_normal((n, m)).astype(np.float32), 4).values
    W[5, 7] = 0.3
    W[900, 1000] = np.float32(-0.0)
    for bits in (4, 8):
        enc = sc.encode(W, format="grid", code_bits=bits)
        assert enc.nx == 2 and enc.code_bits == bits
        x = rng.standard_normal(n).astype(np.float32)
        ref = x.astype(np.float64) @ W.astype(np.float64)
        tol = 1e-5 * np.abs(W).sum(axis=0) * np.abs(x).max()
        monkeypatch.setattr(threads, "saturated", lambda: False)
        assert threads.parallel(n * m)
        assert np.all(np.abs((x @ enc) - ref) <= tol)                    # parallel
        saved = threads.PARALLEL_WORK
        try:
            threads.PARALLEL_WORK = 1 << 62
            assert np.all(np.abs((x @ enc) - ref) <= tol)                # serial
        finally:
            threads.PARALLEL_WORK = saved
        X = rng.standard_normal((5, n)).astype(np.float32)
        saved = fg.SCRATCH_BYTES
        try:
            fg.SCRATCH_BYTES = 40 * n * 4                                # 28 blocks of 40
            Y = X @ enc
        finally:
            fg.SCRATCH_BYTES = saved
        R = X.astype(np.float64) @ W.astype(np.float64)
        assert np.all(np.abs(Y - R) <= 1e-5 * np.abs(W).sum(axis=0) * np.abs(X).max())


def test_byte_count_matches_the_spec_formula():
    rng = np.random.default_rng(2)
    for n, m, bits in ((7, 5, 4), (8, 3, 8), (1, 1, 4), (33, 17, 8)):
        W = qz.integer(rng.standard_normal((n, m)).astype(np.float32), bits).values
        W[0, 0] = np.nan
        enc = sc.encode(W, format="grid", code_bits=bits)
        c = n if bits == 8 else (n + 1) // 2
        nx = enc.nx
        want = (m * c + 9 * m + 4 * nx + 8 * words_for((m + 1) * width_for(nx))
                + 8 * words_for(nx * width_for(n - 1)))
        assert enc.nbytes == want == sc.sizes(W, code_bits=bits)["grid"]
        assert sum(bits for _, bits in enc.layout().values()) <= 8 * enc.nbytes


def test_the_smaller_width_is_chosen_and_bits_can_be_forced():
    W = qz.integer(np.random.default_rng(3).standard_normal((64, 8)), 4).values
    assert sc.encode(W, format="grid").code_bits == 4
    assert sc.encode(W, format="grid", code_bits=8).code_bits == 8
    W8 = qz.integer(np.random.default_rng(3).standard_normal((64, 8)), 8).values
    assert sc.encode(W8, format="grid").code_bits == 8
    assert sc.encode(W8, format="grid").nx == 0
    assert sc.encode(W8, format="grid", code_bits=4).nx > 0  # levels past 4 bits: exceptions
    with pytest.raises(OptionError, match="code_bits must be 4 or 8"):
        sc.encode(W, format="grid", code_bits=5)


def test_arbitrary_values_are_all_exceptions_and_still_exact():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((20, 6)).astype(np.float32)  # no grid: every entry distinct
    enc = sc.encode(W, format="grid")
    assert same_bits(enc.decode(), W) and enc.nnz == W.size
    assert enc.nx >= W.size - 2 * W.shape[1]  # at most two values per column share a grid


def test_column_ranges_decode_alone():
    W = qz.integer(np.random.default_rng(5).standard_normal((9, 30)).astype(np.float32), 4).values
    W[3, 20] = np.inf
    enc = sc.encode(W, format="grid")
    for a, b in ((0, 30), (7, 21), (20, 21), (30, 30)):
        assert same_bits(enc.decode_columns(a, b), W[:, a:b])


def _parts(W=None, bits=4):
    if W is None:
        W = np.array([[0.5, 1.0, 0.0], [1.5, -0.0, 2.0], [0.0, 3.0, -1.0]], np.float32)
    enc = sc.encode(W, format="grid", code_bits=bits)
    return enc.meta, {k: v.copy() for k, v in enc.components().items()}


@pytest.mark.parametrize("fault, message", [
    (lambda meta, c: meta.update(code_bits=6), "code_bits"),
    (lambda meta, c: c["scales"].__setitem__(0, -1.0), "not negative"),
    (lambda meta, c: c["scales"].__setitem__(0, np.nan), "finite"),
    (lambda meta, c: c["scales"].__setitem__(0, -0.0), "-0.0"),
    (lambda meta, c: c["zeros"].__setitem__(0, 9), "zero code"),
    (lambda meta, c: c["codes"].__setitem__(1, 0x10), "padding nibbles"),
    (lambda meta, c: c["codes"].__setitem__(3, 0x01), "exception's code"),
    (lambda meta, c: c.update(codes=c["codes"][:-1]), "length"),
])
def test_structural_faults_are_refused(fault, message):
    meta, comps = _parts()
    fault(meta, comps)
    with pytest.raises(FormatError, match=message):
        Grid.from_components(meta, comps)


def test_integer_quantizer_levels_and_zeros():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((50, 12)).astype(np.float32)
    W[W < -1.5] = 0
    for bits in (2, 4, 8):
        for sym in (True, False):
            q = qz.integer(W, bits, symmetric=sym)
            s = q.info["scales"]
            L = np.rint(q.values.astype(np.float64) / np.where(s > 0, s, 1))
            assert np.all(q.values[W == 0] == 0)
            assert not np.any(np.signbit(q.values) & (q.values == 0))   # no -0.0
            span = (L.max(axis=0) - np.minimum(L.min(axis=0), 0))
            assert np.all(span <= (2 ** bits - 2 if sym else 2 ** bits - 1))
            assert np.all(np.abs(q.values - W) <= 0.5 * s + 1e-6)        # nearest level
            assert sc.encode(q.values, format="grid").nx == 0
    t = qz.integer(W, 4, per="tensor")
    assert t.info["scales"].shape == (1,) and t.k <= 15
    with pytest.raises(QuantizeError, match="bits"):
        qz.integer(W, 9)
    with pytest.raises(QuantizeError, match="per"):
        qz.integer(W, 4, per="row")
    with pytest.raises(QuantizeError, match="2-D"):
        qz.integer(np.ones(4, np.float32), 4)


def test_small_products_run_on_one_thread_and_restore_the_count(monkeypatch):
    import numba
    before = numba.get_num_threads()
    with threads.for_work(10) as par:
        assert not par and numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    monkeypatch.setattr(threads, "saturated", lambda: True)
    with threads.for_work(1 << 40) as par:  # a busy machine: serial, however large
        assert not par and numba.get_num_threads() == 1
    monkeypatch.setattr(threads, "saturated", lambda: False)
    with threads.for_work(1 << 40) as par:
        assert par == (before > 1) and numba.get_num_threads() == before
    assert numba.get_num_threads() == before


def test_a_busy_machine_is_seen_before_the_load_average_rises(monkeypatch, tmp_path):
    """The tasks runnable at this moment count as much as the 1-minute load average: two
    busy processes on a machine of two cores make products serial at once."""
    fake = tmp_path / "loadavg"
    fake.write_text("0.08 0.30 0.71 3/83 23578\n")
    assert threads.runnable_others(str(fake)) == 2
    for text in ("", "0.1 0.2", "0.1 0.2 0.3 x/9 1"):
        fake.write_text(text)
        assert threads.runnable_others(str(fake)) == 0
    assert threads.runnable_others(str(tmp_path / "missing")) == 0
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.08, 0.3, 0.7))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    for others, busy in ((2, True), (1, False), (0, False)):
        monkeypatch.setattr(threads, "runnable_others", lambda o=others: o)
        monkeypatch.setattr(threads, "_load", [0.0, -1.0])  # read again
        assert threads.saturated() == busy


def test_auto_for_speed_picks_a_small_exact_encoding():
    rng = np.random.default_rng(7)
    W = qz.integer(qz.prune(rng.standard_normal((48, 40)).astype(np.float32), 50).weights,
                   4).values
    enc = sc.encode(W, objective="speed")
    assert same_bits(enc.decode(), W)
    assert enc.bits_per_weight <= sc.api.SPEED_MAX_BITS
    assert sc.encode(W).nbytes <= enc.nbytes  # "size" stays the smallest
    with pytest.raises(OptionError, match="objective"):
        sc.encode(W, objective="fast")


def test_pack_quantizes_int_and_records_the_objective(tmp_path):
    from sparsecodec.pack import PackError, pack
    rng = np.random.default_rng(8)
    W = rng.standard_normal((40, 24)).astype(np.float32)
    pack({"w": W}, tmp_path / "a.spc", quantize="int:4", objective="speed")
    f = sc.open(tmp_path / "a.spc")
    assert same_bits(f["w"].decode(), qz.integer(W, 4).values)
    assert '"objective": "speed"' in f.metadata["sparsecodec.pack"]
    pack({"w": W}, tmp_path / "b.spc", quantize="int:8")
    assert "objective" not in sc.open(tmp_path / "b.spc").metadata["sparsecodec.pack"]
    with pytest.raises(QuantizeError, match="bit width"):
        pack({"w": W}, tmp_path / "c.spc", quantize="int:9")
    with pytest.raises(PackError, match="objective"):
        pack({"w": W}, tmp_path / "c.spc", objective="fast")


def test_to_compute_transcodes_for_speed_within_the_bit_budget():
    rng = np.random.default_rng(9)
    W = qz.integer(qz.prune(rng.standard_normal((64, 48)).astype(np.float32), 80).weights,
                   8).values
    small = sc.encode(W)
    fast = sc.to_compute(small)
    assert same_bits(fast.decode(), W) and fast.bits_per_weight <= 10
    assert same_bits(sc.to_compute(small, max_bits=0.5).decode(), W)  # none fits: any format


def test_subnormal_and_huge_values_fit_or_become_exceptions():
    """Steps guessed from subnormal gaps underflow to 0 when divided (a ZeroDivisionError in
    the fit, found by the registry-wide property test); huge values overflow the scales."""
    for dtype in (np.float16, np.float32, np.float64):
        info = np.finfo(dtype)
        tiny = info.smallest_subnormal
        W = np.array([[tiny, 2 * tiny, 0, -tiny], [3 * tiny, info.max, -info.max, np.nan],
                      [5.625, tiny, 5.625, -0.0]], dtype)
        enc = sc.encode(W, format="grid")
        assert same_bits(enc.decode(), W)
        assert same_bits(Grid.from_components(enc.meta, enc.components()).decode(), W)


def test_each_column_keeps_the_candidate_scale_that_reproduces_most():
    """The second candidate beats the first; the third beats only the first, so the second
    stays (each candidate is judged against the best so far, not against the first)."""
    levels = np.array([[1, 2, 3, 4]], np.int64)
    ok = np.ones(levels.shape, bool)
    c1, c2, c3 = np.array([0.1]), np.array([0.5]), np.array([0.25])
    W = np.array([[0.25, 1.0, 1.5, 2.0]], np.float32)  # c1: 0 hits, c2: 3, c3: 1 (0.25)
    scale, hit = fg._best_scales((c1, c2, c3), levels, ok, W.view(np.uint32),
                                    W.dtype)
    assert scale[0] == 0.5 and hit.tolist() == [[False, True, True, True]]
    W = np.array([[0.5, 1.0, 1.5, 1.0]], np.float32)    # c1: 0, c2: 3, c3: 1 (level 4)
    scale, hit = fg._best_scales((c1, c2, c3), levels, ok, W.view(np.uint32),
                                    W.dtype)
    assert scale[0] == 0.5 and hit.tolist() == [[True, True, True, False]]


def test_a_value_off_the_grid_does_not_pull_in_a_finer_step():
    """float64 columns s*L plus one planted value: a step of s/2 lets the interval accept every
    value, the planted one too, in an interval so narrow that no float scale reproduces them
    together. The fit judges a step by the entries its scale reproduces, so only the planted
    value is an exception (it was 4 exceptions in 174 of 3,000 such columns before)."""
    L = np.array([0, 5, -3, 0, -3, 4, 0, -4, 1, 6], np.float64)
    scales = [0.02627388139710556, 0.28860490681387996, 0.025755090801977697,
              *np.exp(np.random.default_rng(1).uniform(-6, 3, 200))]
    for s in scales:
        W = (s * L)[:, None]
        W[6, 0] = 0.123456789
        enc = sc.encode(W, format="grid", code_bits=8)
        assert same_bits(enc.decode(), W)
        assert enc.nx == 1, s


def test_sizing_within_a_limit_stops_the_fit_early(monkeypatch):
    """Unquantized values over 4 blocks of columns: asked for at most dense's bytes, the 8-bit
    fit stops once its exceptions cost more (before the last block) and the 4-bit fit, whose
    bound already exceeds the limit, is not started; the answer is None, as the full fit's
    size says it must be."""
    from sparsecodec.formats.base import Matrix

    W = np.random.default_rng(3).standard_normal((384, 600)).astype(np.float32)
    limit = W.nbytes
    assert Grid.size_of(Matrix(W)) > limit
    calls = []
    fit = fg.kg.fit
    monkeypatch.setattr(fg.kg, "fit", lambda V, *a: (calls.append(V.shape[0]), fit(V, *a)))
    assert Grid.size_within(Matrix(W), limit) is None
    assert 0 < sum(calls) < W.shape[1]


def test_a_repeated_value_off_the_grid_does_not_anchor_the_fit():
    """A column on one step (levels -100..100) with 0.12345679 planted twice: accepted first,
    as the most frequent value, it used to set every step guess, and 29 of 31 entries became
    exceptions. The fit retries with it last: only the two planted entries are off the grid."""
    levels = np.array([3, 87, -27, -79, -74, 33, 51, 64, -62, 39, 49, 100, 61, 54, 32, 0, 97,
                       -40, -67, 20, -85, 0, -21, -64, -43, 56, 80, -2, 41, -66, 45])
    W = (0.048808336 * levels).astype(np.float32).reshape(-1, 1)
    W[[15, 21], 0] = 0.12345679
    enc = sc.encode(W, format="grid", code_bits=8)
    assert enc.nx == 2 and same_bits(enc.decode(), W)
