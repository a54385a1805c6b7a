"""Quantizers and pruning: contracts of the result type, optimality against brute force,
statistical unbiasedness, and the comparisons that justify each quantizer (ECSQ vs k-means,
GWK vs k-means)."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparsecodec as sc
from sparsecodec import quantize as qz
from sparsecodec.bounds import entropy_h0

DTYPES = [np.float16, np.float32, np.float64]


@st.composite
def weights(draw, max_side=40):
    """Weight-like arrays: Gaussian or few-valued, some entries pruned, any float dtype."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = (draw(st.integers(0, max_side)), draw(st.integers(0, max_side)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        W = rng.standard_normal(shape) * draw(st.sampled_from([1e-3, 0.1, 3.0]))
    else:  # few distinct values, many ties
        W = rng.integers(-4, 5, shape) / 4.0
    W[rng.random(shape) < draw(st.sampled_from([0.0, 0.5, 0.9]))] = 0
    return W.astype(dtype)


def run(method, W, k, seed=0):
    if method == "gwk":
        imp = np.abs(np.random.default_rng(seed).standard_normal(W.shape))
        return qz.gwk(W, k, imp, seed=seed)
    if method == "ecsq":
        return qz.ecsq(W, k, lam=0.01 * float(np.var(W)) if W.size else 0.0, seed=seed)
    if method in ("kmeans", "probabilistic"):
        return qz.quantize(W, method, k, seed=seed)
    return qz.quantize(W, method, k)


def min_k(method):
    return 2 if method == "probabilistic" else 1


@pytest.mark.parametrize("method", list(qz.METHODS))
@given(W=weights(), k=st.integers(1, 40))
def test_result_contract(method, W, k):
    k = max(k, min_k(method))
    q = run(method, W, k)
    assert q.values.shape == W.shape and q.values.dtype == W.dtype
    assert q.labels.shape == W.shape and q.labels.dtype == np.int32
    assert q.k <= k and np.all(np.diff(q.codebook.astype(np.float64)) > 0)
    assert q.codebook.dtype == W.dtype
    nonzero = W != 0
    assert np.array_equal(q.mask, nonzero)
    assert np.array_equal(q.values[nonzero], q.codebook[q.labels[nonzero]])
    pruned = q.values[~nonzero]
    assert np.all(pruned.view(f"u{W.itemsize}") == 0)  # +0.0 exactly
    assert np.unique(q.values[q.values != 0]).size <= k
    if q.k:
        assert np.bincount(q.labels[nonzero], minlength=q.k).min() > 0  # every level used
    err = (W.astype(np.float64) - q.values.astype(np.float64)) ** 2
    assert q.mse == pytest.approx(err.mean() if W.size else 0.0, rel=1e-9, abs=1e-300)
    if W.size:
        assert q.entropy == pytest.approx(entropy_h0(q.values.reshape(W.shape[0], -1)),
                                          abs=1e-9)
    again = run(method, W, k)
    assert np.array_equal(again.values, q.values) and np.array_equal(again.labels, q.labels)


@pytest.mark.parametrize("method", list(qz.METHODS))
def test_quantized_matrix_encodes_losslessly(method):
    W = qz.prune(np.random.default_rng(1).standard_normal((96, 64)).astype(np.float32), 80)[0]
    q = run(method, W, 16)
    for fmt in ("sham", "index_map", "ham"):
        enc = sc.encode(q.values, format=fmt)
        assert np.array_equal(enc.decode(), q.values)
    assert sc.encode(q.values, format="index_map").components()["codebook"].size <= 17


def sse(x, q):
    return float(((np.asarray(x, np.float64) - np.asarray(q, np.float64)) ** 2).sum())


def brute_force_sse(x, w, k):
    """Least weighted SSE over every labelling of the points into at most k clusters."""
    best = np.inf
    for labels in itertools.product(range(k), repeat=len(x)):
        lab = np.array(labels)
        total = 0.0
        for c in range(k):
            sel = lab == c
            if sel.any() and w[sel].sum() > 0:
                mu = (w[sel] * x[sel]).sum() / w[sel].sum()
                total += (w[sel] * (x[sel] - mu) ** 2).sum()
        best = min(best, total)
    return best


@given(xs=st.lists(st.integers(-20, 20).filter(bool), min_size=1, max_size=7),
       k=st.integers(1, 3), weighted=st.booleans(), seed=st.integers(0, 1000))
def test_optimal_kmeans_equals_brute_force(xs, k, weighted, seed):
    x = np.array(xs, np.float64) / 4
    w = np.random.default_rng(seed).integers(1, 5, x.size).astype(np.float64) if weighted \
        else np.ones(x.size)
    q = qz.optimal_kmeans(x, k, importance=w if weighted else None)
    assert q.info["exact"]
    got = float((w * (x - q.values) ** 2).sum())
    assert got == pytest.approx(brute_force_sse(x, w, k), rel=1e-9, abs=1e-12)


@given(W=weights(max_side=30), k=st.integers(1, 24), seed=st.integers(0, 50))
def test_optimal_never_worse_than_lloyd(W, k, seed):
    opt = qz.optimal_kmeans(W.astype(np.float64), k)
    for init in ("linear", "density", "kmeans++"):
        lloyd = qz.kmeans(W.astype(np.float64), k, init=init, seed=seed)
        assert opt.mse <= lloyd.mse * (1 + 1e-9) + 1e-300


def test_optimal_grouped_large_input_near_lloyd():
    W = np.random.default_rng(3).standard_normal(200_000).astype(np.float32)
    opt = qz.optimal_kmeans(W, 64, max_points=2048)
    assert not opt.info["exact"] and opt.info["points"] <= 2048
    lloyd = qz.kmeans(W, 64, init="linear", n_iter=50)
    assert opt.mse < lloyd.mse
    exact = qz.optimal_kmeans(W[:3000], 8)
    assert exact.info["exact"] and exact.info["points"] == np.unique(W[:3000]).size


def test_kmeans_init_choices_and_convergence():
    W = np.random.default_rng(4).laplace(size=5000)
    results = {init: qz.kmeans(W, 8, init=init) for init in ("linear", "density", "kmeans++")}
    for q in results.values():
        assert q.info["converged"] and q.k == 8
    best = qz.optimal_kmeans(W, 8).mse
    assert min(q.mse for q in results.values()) <= best * 1.01
    assert qz.kmeans(W, 8).info["init"] == "kmeans++"  # the default


def test_few_distinct_values_kept_exactly():
    W = np.array([[0.5, -1.0, 0.0], [0.5, 2.0, -1.0]], np.float32)
    for method in qz.METHODS:
        q = run(method, W, 3) if method != "ecsq" else qz.ecsq(W, 3, lam=0.0)
        assert np.array_equal(q.values, W), method
        assert q.mse == 0.0


def test_probabilistic_is_unbiased():
    """E[q] = w: with a fixed seed the mean residual is within 4 standard errors of 0, overall
    and for one weight repeated 20,000 times (tolerances stated in the asserts)."""
    rng = np.random.default_rng(5)
    W = rng.standard_normal(400_000).astype(np.float64)
    x = 0.123456
    W[:20_000] = x
    q = qz.probabilistic(W, 9, seed=11)
    r = q.values - W
    n = r.size
    assert abs(r.mean()) < 4 * r.std() / np.sqrt(n)
    assert x not in q.codebook  # x lies inside an interval, not on an edge
    rep = r[:20_000]
    assert rep.std() > 0  # it was rounded both ways
    assert abs(rep.mean()) < 4 * rep.std() / np.sqrt(rep.size)
    lo, hi = q.codebook[q.codebook <= x].max(), q.codebook[q.codebook >= x].min()
    assert set(np.unique(q.values[:20_000])) <= {lo, hi}
    assert q.codebook[0] == W.min() and q.codebook[-1] == W.max()
    other = qz.probabilistic(W, 9, seed=12)
    assert not np.array_equal(other.values, q.values)


def test_ecsq_beats_kmeans_entropy_at_equal_mse():
    W = np.random.default_rng(6).laplace(scale=0.05, size=40_000).astype(np.float32)
    km = qz.kmeans(W, 16)
    e = qz.ecsq(W, 64, mse=km.mse)
    assert e.mse <= km.mse * (1 + 1e-9)
    assert e.entropy_nonzero < km.entropy_nonzero - 0.1
    assert e.info["lam"] > 0


def test_ecsq_lambda_targets():
    W = np.random.default_rng(7).laplace(size=20_000)
    q = qz.ecsq(W, 64, entropy=2.5)
    assert q.entropy_nonzero <= 2.5 + 1e-9
    assert qz.ecsq(W, 64, levels=5).k <= 5
    lam = qz.ecsq_lambda(W, 64, entropy=2.5)
    assert lam == q.info["lam"]
    small = qz.ecsq(W, 64, lam=0.0)
    assert small.entropy_nonzero > 2.5
    big = qz.ecsq(W, 64, lam=lam * 10)
    assert big.entropy_nonzero < q.entropy_nonzero
    with pytest.raises(sc.QuantizeError, match="below what"):
        qz.ecsq(W, 4, mse=1e-12)


def test_ecsq_refuses_an_entropy_only_one_level_meets():
    """A 50%-pruned Gaussian layer: ECSQ's points are one level (0 bits, every weight lost) and
    two symmetric levels (1 bit), nothing between. A target in the gap is an error naming the
    lowest entropy that keeps the weights, not a silent collapse to one level."""
    W = np.random.default_rng(9).standard_normal((64, 256)) * 0.05
    P = qz.prune(W, 50).weights
    with pytest.raises(sc.QuantizeError, match=r"entropy=0.3: .*between 0 bits .* and 1.000 "
                                               r"bits \(2 levels\)"):
        qz.ecsq(P, 64, entropy=0.3)
    two = qz.ecsq(P, 64, entropy=1.0)
    assert two.k == 2 and np.linalg.norm(two.values - P) < 0.5 * np.linalg.norm(P)
    assert qz.ecsq(P, 64, entropy=0.0).k == 1  # asked for: one level
    assert qz.ecsq(np.random.default_rng(1).laplace(size=20_000), 64, entropy=0.3).k > 1


def test_gwk_lowers_importance_weighted_error():
    rng = np.random.default_rng(8)
    W = rng.standard_normal(20_000)
    imp = np.where(rng.random(W.size) < 0.05, 100.0, 0.01)  # a few weights matter a lot
    imp[W > 1] = 50.0
    plain = qz.kmeans(W, 8)
    weighted = qz.gwk(W, 8, imp)
    assert weighted.method == "gwk"
    assert weighted.info["weighted_mse"] < 0.9 * float((imp * (W - plain.values) ** 2).mean())
    assert weighted.mse > plain.mse  # it pays in plain MSE, as it should
    zero_imp = qz.gwk(W, 8, np.zeros_like(W))  # no preference: plain k-means
    assert np.array_equal(zero_imp.values, plain.values)


def test_centroid_gradients_cumulative_rule():
    rng = np.random.default_rng(9)
    W = qz.prune(rng.standard_normal((30, 20)), 50).weights
    q = qz.kmeans(W, 5)
    grad = rng.standard_normal(W.shape)
    g = qz.centroid_gradients(grad, q.labels, q.k)
    expect = [sum(grad[i, j] for i in range(30) for j in range(20) if q.labels[i, j] == c)
              for c in range(q.k)]
    np.testing.assert_allclose(g, expect, rtol=1e-12, atol=1e-12)
    with pytest.raises(sc.ShapeError):
        qz.centroid_gradients(grad[:, :3], q.labels, q.k)
    with pytest.raises(sc.QuantizeError, match="beyond"):
        qz.centroid_gradients(grad, q.labels, q.k - 1)


@given(W=weights(), p=st.floats(0, 100))
def test_prune_counts_and_order(W, p):
    P = qz.prune(W, p)
    cut = int(np.floor(p / 100 * W.size + 0.5))
    assert P.weights.dtype == W.dtype and P.mask.shape == W.shape
    assert int((~P.mask).sum()) == cut
    assert np.array_equal(P.weights[P.mask], W[P.mask])
    assert np.all(P.weights[~P.mask] == 0)
    mag = np.abs(W.astype(np.float64))
    if 0 < cut < W.size:
        assert mag[~P.mask].max() <= mag[P.mask].min()


def test_global_prune_one_threshold():
    rng = np.random.default_rng(10)
    layers = {"a": rng.standard_normal((50, 40)) * 0.1,
              "b": rng.standard_normal((30, 20)).astype(np.float32), "c": np.zeros(7)}
    out = qz.global_prune(layers, 60)
    assert list(out) == ["a", "b", "c"]
    total = sum(v.size for v in layers.values())
    assert sum(int((~P.mask).sum()) for P in out.values()) == round(0.6 * total)
    pruned = max(np.abs(layers[n][~P.mask]).max() for n, P in out.items())
    kept = min(np.abs(layers[n][P.mask]).min() for n, P in out.items() if P.mask.any())
    assert pruned <= kept
    assert (~out["a"].mask).mean() > (~out["b"].mask).mean()  # small layer loses more


def test_nm_prune_two_of_four():
    rng = np.random.default_rng(11)
    W = rng.standard_normal((16, 6)).astype(np.float32)
    P = qz.nm_prune(W, 2, 4)
    groups = P.mask.T.reshape(6, 4, 4)
    assert np.all(groups.sum(axis=2) == 2)
    for j in range(6):
        for g in range(4):
            col = np.abs(W[4 * g:4 * g + 4, j])
            assert set(np.flatnonzero(groups[j, g])) == set(np.argsort(-col)[:2])
    P1 = qz.nm_prune(W.T, 1, 2, axis=1)
    assert np.all(P1.mask.reshape(6, 8, 2).sum(axis=2) == 1)
    with pytest.raises(sc.ShapeError, match="multiple"):
        qz.nm_prune(W, 2, 5)


@pytest.mark.parametrize("call, error, match", [
    (lambda W: qz.kmeans(W, 0), sc.QuantizeError, r"k must be in"),
    (lambda W: qz.uniform(W, 2.5), sc.QuantizeError, r"k must be an integer"),
    (lambda W: qz.kmeans(W, 50, exact_k=True), sc.QuantizeError, r"only 12 distinct"),
    (lambda W: qz.uniform(W, 50, exact_k=True), sc.QuantizeError, r"only 12 distinct"),
    (lambda W: qz.prune(W, 101), sc.QuantizeError, r"\[0, 100\]"),
    (lambda W: qz.prune(W, -1), sc.QuantizeError, r"\[0, 100\]"),
    (lambda W: qz.prune(np.where(W > 0, np.nan, W), 5), sc.QuantizeError, r"NaN"),
    (lambda W: qz.kmeans(np.where(W > 0, np.inf, W), 5), sc.QuantizeError, r"infinite"),
    (lambda W: qz.gwk(W, 3, np.ones((2, 2))), sc.ShapeError, r"shape"),
    (lambda W: qz.gwk(W, 3, -np.ones(W.shape)), sc.QuantizeError, r"nonnegative"),
    (lambda W: qz.gwk(W, 3, None), sc.QuantizeError, r"importance"),
    (lambda W: qz.kmeans(W.astype(np.int32), 3), sc.DTypeError, r"float"),
    (lambda W: qz.kmeans(W, 3, init="forgy"), sc.QuantizeError, r"init"),
    (lambda W: qz.quantize(W, "lloyd", 3), sc.QuantizeError, r"unknown quantizer"),
    (lambda W: qz.uniform(W, 1, symmetric=True), sc.QuantizeError, r"k must be in \[2"),
    (lambda W: qz.probabilistic(W, 4, seed=-1), sc.QuantizeError, r"seed"),
    (lambda W: qz.ecsq(W, 4), sc.QuantizeError, r"lam"),
    (lambda W: qz.ecsq(W, 4, lam=-1.0), sc.QuantizeError, r"lam"),
    (lambda W: qz.optimal_kmeans(W, 4, max_points=0), sc.QuantizeError, r"max_points"),
    (lambda W: qz.global_prune([W], 5), sc.QuantizeError, r"mapping"),
])
def test_invalid_arguments(call, error, match):
    W = (np.arange(12, dtype=np.float64).reshape(3, 4) - 5.5) / 2
    with pytest.raises(error, match=match):
        call(W)


def test_non_native_and_non_contiguous_inputs():
    W = np.random.default_rng(12).standard_normal((40, 30)).astype(np.float32)
    ref = qz.kmeans(W, 6)
    big = qz.kmeans(W.astype(">f4"), 6)
    assert big.values.dtype == np.float32 and np.array_equal(big.values, ref.values)
    F = np.asfortranarray(W)
    assert np.array_equal(qz.kmeans(F, 6).values, ref.values)
    T = qz.kmeans(W.T, 6)
    assert T.values.shape == (30, 40) and np.array_equal(T.values, qz.kmeans(W.T.copy(), 6).values)


def test_symmetric_uniform_zero_level_prunes():
    W = np.array([-1.0, -0.1, 0.05, 0.4, 1.0])
    q = qz.uniform(W, 3, symmetric=True)
    assert q.values.tolist() == [-1.0, 0.0, 0.0, 0.0, 1.0]
    assert q.mask.all() and 0.0 in q.codebook
    assert q.entropy == pytest.approx(entropy_h0(q.values.reshape(1, -1)))
    a = qz.uniform(W, 5)
    assert a.values.tolist() == [-1.0, 0.0, 0.0, 0.5, 1.0]
    assert a.codebook.tolist() == [-1.0, 0.0, 0.5, 1.0]  # -0.5 won no weight: not stored


@given(seed=st.integers(0, 2**32 - 1), t=st.integers(0, 300), n=st.integers(0, 3000),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_assign_matches_searchsorted(seed, t, n, dtype):
    """The bucket-table assignment against numpy's binary search, with ties on thresholds,
    repeated thresholds and values outside their range."""
    from sparsecodec.kernels.quantize import assign
    rng = np.random.default_rng(seed)
    th = np.sort(rng.choice(rng.standard_normal(max(t, 1)) ** 3, t))
    x = np.concatenate([rng.standard_normal(n) * 2, th, np.zeros(3)]).astype(dtype)
    labels = np.empty(x.size, np.int32)
    counts = assign(x, th, labels)
    expect = np.searchsorted(th, x.astype(np.float64), side="left")
    expect[x == 0] = -1
    assert np.array_equal(labels, expect)
    assert np.array_equal(counts, np.bincount(np.where(expect < 0, t + 1, expect),
                                              minlength=t + 2))


def test_module_docstring_example_runs():
    import doctest
    failures, tried = doctest.testmod(qz, verbose=False)
    assert tried > 0 and failures == 0


def test_seeds_are_used_and_repeatable():
    """k-means++ and probabilistic rounding draw from ``seed``: the same seed gives the same
    result bit for bit, and other seeds give other results (a quantizer that ignored its seed
    would make every run alike)."""
    W = np.random.default_rng(21).standard_normal((64, 64)).astype(np.float32)
    for fn in (lambda s: qz.kmeans(W, 16, seed=s, n_iter=3),
               lambda s: qz.probabilistic(W, 16, seed=s)):
        runs = [fn(s).values for s in range(4)]
        assert np.array_equal(fn(0).values, runs[0])
        assert len({r.tobytes() for r in runs}) > 1


def test_probabilistic_rounding_does_not_depend_on_the_thread_count():
    import numba

    W = np.random.default_rng(22).standard_normal((300, 200)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = qz.probabilistic(W, 8, seed=5).values
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = qz.probabilistic(W, 8, seed=5).values
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one.view(np.uint32), many.view(np.uint32))


@pytest.mark.parametrize("t", [1, 15, 70_000])  # 70,000 thresholds: past the 2^16 table cap
def test_chunked_assignment_matches_searchsorted(t):
    """The assignment kernel works in 65,536-entry chunks with a bucket table of at most 2^16
    entries; against numpy's searchsorted on 3 chunks and a ragged end, ties and zeros included."""
    from sparsecodec.kernels import quantize as kq

    rng = np.random.default_rng(t)
    flat = rng.standard_normal(3 * kq.CHUNK + 123)
    thresholds = np.sort(rng.standard_normal(t))
    flat[::7] = 0.0
    flat[1::11] = thresholds[rng.integers(0, t, flat[1::11].size)]  # exactly on a threshold
    labels = np.empty(flat.size, np.int32)
    counts = kq.assign(flat, thresholds, labels)
    want = np.where(flat == 0, -1, np.searchsorted(thresholds, flat, side="left"))
    assert np.array_equal(labels, want)
    assert counts[:t + 1].tolist() == np.bincount(want[want >= 0], minlength=t + 1).tolist()
    assert counts[-1] == int((flat == 0).sum())


@given(st.lists(st.integers(-6, 6).filter(bool), min_size=1, max_size=60),
       st.lists(st.integers(0, 61), min_size=1, max_size=8))
def test_group_cuts_snap_like_the_run_starts_they_no_longer_list(values, targets):
    """SortedWeights snaps cut targets to the next run start by binary search in the sorted
    weights (listing every run start cost 16 bytes per distinct value): the same positions as
    searching the list of run starts, and the same distinct count."""
    from sparsecodec.quantize.sorted_weights import SortedWeights

    sw = SortedWeights(np.array(values, np.float32))
    starts = sw.run_starts()
    t = np.minimum(np.array(targets), sw.n)
    want = starts[np.minimum(np.searchsorted(starts, t), starts.size - 1)]
    assert np.array_equal(sw._snap(t), want)
    assert sw.distinct() == starts.size == len(set(values))
