"""Product quantization: training, the pq format, lookup-table products, bounds."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparsecodec as sc
from sparsecodec import bounds as bd
from sparsecodec import quantize as qz
from sparsecodec.formats.pq import sub_vectors


def layer(n=64, m=48, seed=0):
    return (np.random.default_rng(seed).standard_normal((n, m)) / np.sqrt(n)).astype(np.float32)


def codes_and_book(enc):
    book = enc.codebook.reshape(-1, enc.k, enc.d)
    return enc.codes(), book


@pytest.mark.parametrize("codebook", ["shared", "per_group"])
@pytest.mark.parametrize("coding", ["packed", "huffman"])
@pytest.mark.parametrize("n", [64, 61])
def test_lut_products_equal_the_decoded_matrix(codebook, coding, n):
    W = layer(n)
    enc = qz.product_quantize(W, 4, 8, codebook=codebook, index_coding=coding, pad=n % 4 > 0)
    assert enc.meta["coding"] == coding and enc.meta["per_group"] == (codebook == "per_group")
    D = enc.decode()
    assert D.shape == W.shape and D.dtype == W.dtype
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n)
    X = rng.standard_normal((7, n))
    np.testing.assert_allclose(x @ enc, x @ D.astype(np.float64), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(X @ enc, X @ D.astype(np.float64), rtol=1e-10, atol=1e-10)
    # decode is exactly what the codebook says, sub-vector by sub-vector
    codes, book = codes_and_book(enc)
    G = -(-n // 4)
    which = np.tile(np.arange(G), W.shape[1]) if codebook == "per_group" else 0
    expect = book[which, codes].reshape(W.shape[1], G * 4)[:, :n].T
    assert np.array_equal(D, expect)
    again = type(enc).from_components(enc.meta, enc.components())
    assert np.array_equal(again.decode().view(np.uint32), D.view(np.uint32))


def test_lut_chunking_for_large_codebooks(monkeypatch):
    import importlib
    fpq = importlib.import_module("sparsecodec.formats.pq")  # sc.formats is the function
    W = layer(64, 40)
    enc = qz.product_quantize(W, 2, 64)
    X = np.random.default_rng(2).standard_normal((5, 64))
    ref = X @ enc.decode().astype(np.float64)
    monkeypatch.setattr(fpq, "_LUT_ENTRIES", 64 * 2)  # a slab of 2 groups x 1 column
    np.testing.assert_allclose(X @ enc, ref, rtol=1e-10, atol=1e-10)


def test_bits_per_weight_formula_equals_nbytes():
    W = layer(128, 96)
    for d, k, cb in ((4, 16, np.float32), (8, 32, np.float16), (2, 256, np.float32)):
        enc = qz.product_quantize(W, d, k, index_coding="packed", codebook_dtype=cb)
        B_c = 8 * np.dtype(cb).itemsize
        psi = bd.psi_pq(128, 96, d, k, 32, B_c, dictionary="stored")
        assert round(psi * W.size * 32) == 8 * enc.nbytes
        paper = bd.psi_pq(128, 96, d, k, 32, B_c)
        assert paper == pytest.approx((np.ceil(np.log2(k)) * W.size / d + k * d * B_c)
                                      / (W.size * 32))
        assert enc.bits_per_weight == pytest.approx(psi * 32)
    row = bd.report(enc, formats=["pq"]).row("pq")
    assert row.given and row.stored == pytest.approx(row.psi)


def test_importance_lowers_the_weighted_error():
    W = layer(64, 64, seed=3)
    rng = np.random.default_rng(4)
    imp = np.where(rng.random(W.shape) < 0.1, 50.0, 0.1)
    plain = qz.product_quantize(W, 4, 16, seed=0).decode()
    weighted = qz.product_quantize(W, 4, 16, importance=imp, seed=0).decode()
    err = [float((imp * (W - D) ** 2).sum()) for D in (plain, weighted)]
    assert err[1] < 0.8 * err[0]


def test_mask_keeps_pruned_sub_vectors_exactly_zero():
    W = layer(256, 256, seed=5)
    norms = np.linalg.norm(sub_vectors(W, 4), axis=1).reshape(256, 64).T  # (groups, columns)
    keep = np.repeat(norms > np.median(norms), 4, axis=0)  # prune whole sub-vectors
    P = np.where(keep, W, 0)
    enc = qz.product_quantize(P, 4, 16, mask=keep)
    D = enc.decode()
    assert np.all(D[~keep].view(np.uint32) == 0)
    assert enc.codebook.reshape(16, 4)[0].tolist() == [0] * 4  # the reserved zero codeword
    kept = D.reshape(64, 4, 256).transpose(0, 2, 1)[norms > np.median(norms)]  # (kept, 4)
    assert kept.shape[0] == keep.sum() // 4 and np.all(np.any(kept != 0, axis=1))
    auto = qz.product_quantize(P, 4, 16, mask=keep, index_coding="auto")
    assert auto.meta["coding"] == "huffman"  # half the codes are the zero codeword
    assert auto.nbytes < qz.product_quantize(P, 4, 16, mask=keep, index_coding="packed").nbytes


def test_lossless_reencoding_of_a_decoded_pq_matrix():
    enc = qz.product_quantize(layer(64, 40), 8, 16)
    D = enc.decode()
    again = sc.encode(D, format="pq", d=8)
    assert np.array_equal(again.decode().view(np.uint32), D.view(np.uint32))
    assert again.k <= 16 and again.nbytes <= enc.nbytes + 8
    assert sc.sizes(D, d=8)["pq"] == again.nbytes
    assert sc.encode(D, d=8).format == "pq"  # auto weighs pq once d is given
    with pytest.raises(sc.EncodeError, match="distinct 8-long sub-vectors"):
        sc.encode(D, format="pq", d=8, max_codewords=4)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 24), m=st.integers(1, 12),
       d=st.integers(1, 5), k=st.integers(1, 6), per=st.booleans())
def test_training_property(seed, n, m, d, k, per):
    W = np.random.default_rng(seed).standard_normal((n, m)).astype(np.float32)
    G = -(-n // d)
    k = min(k, m if per and G > 1 else G * m)
    enc = qz.product_quantize(W, d, k, pad=True, seed=seed,
                              codebook="per_group" if per else "shared")
    D = enc.decode()
    x = np.random.default_rng(seed + 1).standard_normal(n)
    np.testing.assert_allclose(x @ enc, x @ D.astype(np.float64), rtol=1e-9, atol=1e-9)
    codes = enc.codes()
    assert codes.max() < k and codes.size == G * m
    full = sub_vectors(D[: (n // d) * d], d)  # whole groups decode to codewords exactly
    assert np.unique(full, axis=0).shape[0] <= (k * G if per else k)
    same = qz.product_quantize(W, d, k, pad=True, seed=seed,
                               codebook="per_group" if per else "shared")
    assert np.array_equal(same.decode(), D)


def test_two_level_tree_for_many_codewords():
    W = layer(64, 512, seed=6)
    enc = qz.product_quantize(W, 2, 2048)  # above TREE_ABOVE: 45 x 45 tree
    assert enc.k == 2048
    err = np.linalg.norm(enc.decode() - W) / np.linalg.norm(W)
    small = qz.product_quantize(W, 2, 64)
    assert err < np.linalg.norm(small.decode() - W) / np.linalg.norm(W)


def test_conv_reshaping_round_trips():
    K = np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3)  # OIHW
    W = qz.conv_to_matrix(K)
    assert W.shape == (27, 2)
    assert np.array_equal(W[:9, 1], K[1, 0].ravel())  # one 3x3 patch = one 9-long sub-vector
    assert np.array_equal(qz.matrix_to_conv(W, K.shape), K)
    H = K.transpose(2, 3, 1, 0)  # HWIO
    assert np.array_equal(qz.conv_to_matrix(H, "HWIO"), W)
    assert np.array_equal(qz.matrix_to_conv(W, H.shape, "HWIO"), H)
    enc = qz.product_quantize(qz.conv_to_matrix(np.random.default_rng(0).standard_normal(
        (8, 4, 3, 3)).astype(np.float32)), 9, 4)
    assert enc.d == 9 and enc.groups == 4


@pytest.mark.parametrize("call, error, match", [
    (lambda W: qz.product_quantize(W, 5, 4), sc.QuantizeError, "not a multiple"),
    (lambda W: qz.product_quantize(W, 0, 4), sc.QuantizeError, "d must be"),
    (lambda W: qz.product_quantize(W, 4, 10_000), sc.QuantizeError, "exceed"),
    (lambda W: qz.product_quantize(W, 4, 40, codebook="per_group"), sc.QuantizeError, "exceed"),
    (lambda W: qz.product_quantize(W, 4, 4, codebook="tree"), sc.QuantizeError, "codebook"),
    (lambda W: qz.product_quantize(W, 4, 4, mask=np.ones(3, bool)), sc.ShapeError, "mask"),
    (lambda W: qz.product_quantize(W, 4, 4, importance=-np.ones(W.shape)), sc.QuantizeError,
     "nonnegative"),
    (lambda W: qz.product_quantize(W[0], 4, 4), sc.ShapeError, "2-D"),
    (lambda W: qz.product_quantize(W, 4, 4, index_coding="zip"), sc.OptionError, "index_coding"),
    (lambda W: qz.conv_to_matrix(W), sc.ShapeError, "4 dimensions"),
])
def test_invalid_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(layer(64, 32))


def test_hostile_components():
    enc = qz.product_quantize(layer(32, 16), 4, 5, index_coding="packed")
    meta, comps = enc.meta, enc.components()
    with pytest.raises(sc.FormatError, match="codebook_dtype"):
        type(enc).from_components({**meta, "codebook_dtype": "float64"}, comps)
    with pytest.raises(sc.FormatError, match="length"):
        type(enc).from_components({**meta, "k": 6}, comps)
    bad = dict(comps, indices=np.full_like(comps["indices"], np.uint64(2**64 - 1)))
    with pytest.raises(sc.FormatError, match="past the 5 codewords|padding"):
        type(enc).from_components(meta, bad)


@pytest.mark.parametrize("distinct", [200, 60000])  # 8- and 16-bit codes: whole-byte paths
def test_byte_aligned_code_widths(distinct):
    rng = np.random.default_rng(7)
    pool = (np.arange(1, distinct + 1) / distinct).astype(np.float32)  # all distinct
    W = pool[np.concatenate([np.arange(distinct), rng.integers(0, distinct, 300 * 210 -
                                                                distinct)])].reshape(300, 210)
    enc = sc.encode(W, format="pq", d=1, index_coding="packed")
    assert enc.meta["k"] == distinct
    x = rng.standard_normal(300)
    X = rng.standard_normal((3, 300))
    np.testing.assert_allclose(x @ enc, x @ W.astype(np.float64), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(X @ enc, X @ W.astype(np.float64), rtol=1e-10, atol=1e-10)
