"""Space bounds: the published formulas against the real bytes, entropy limits, Deep
Compression's calculator, the exact account and the report."""

import math

import numpy as np
import pytest
from hypothesis import given
from strategies import matrices

import sparsecodec as sc
from sparsecodec import bounds as bd
from sparsecodec.cli import main
from sparsecodec.coding.bits import unpack, width_for
from sparsecodec.examples import pruned_quantized_layer
from sparsecodec.formats.base import Matrix

# [M21]'s 5x5 example
PAPER = np.array([[1, 0, 4, 0, 0],
                  [0, 10, 0, 0, 0],
                  [2, 3, 0, 0, 5],
                  [0, 0, 0, 0, 0],
                  [0, 0, 0, 0, 6]], np.float32)


def test_csc_arrays_of_the_sham_paper_example():
    enc = sc.encode(PAPER, format="csc")
    n, m = PAPER.shape
    nz = enc.values.tolist()
    ri = (unpack(enc.indices, width_for(n - 1), enc.nnz) + 1).tolist()
    cb = (unpack(enc.indptr, width_for(enc.nnz), m + 1) + 1).tolist()
    assert nz == [1, 2, 10, 3, 4, 5, 6]
    assert ri == [1, 3, 2, 3, 1, 3, 5]
    assert cb == [1, 3, 5, 6, 6, 8]


def test_printed_sham_formula_undercounts_and_the_corrected_one_holds():
    n = m = 4096
    q = round(0.05 * n * m)
    assert bd.psi_sham(n, m, q, 32) == pytest.approx(0.00987, abs=1e-5)  # as printed
    assert bd.psi_sham_corrected(n, m, q, 32) == pytest.approx(0.02838, abs=1e-5)
    # a real matrix of that regime: 5% nonzeros, 32 values, 12-bit row indices (n = 4096)
    W = pruned_quantized_layer(4096, 256, 0.05, 32)
    enc = sc.encode(W, format="sham")
    q, k = enc.nnz, Matrix(W).nonzero_distinct.k
    psi = 8 * enc.nbytes / (W.size * 32)
    assert psi > 1.5 * bd.psi_sham(4096, 256, q, k)  # 0.0267 real vs 0.0137 printed
    assert psi <= bd.psi_sham_corrected(4096, 256, q, k)
    assert psi <= bd.psi_sham_corrected(4096, 256, q, k, dictionary="stored")


def test_formulas_by_hand():
    assert bd.psi_csc(5, 5, 7) == pytest.approx((14 + 6) / 25)
    assert bd.psi_ham(10, 10, 4) == pytest.approx(3 / 32 + 24 / 100)
    assert bd.psi_ham_worst(10, 10) == pytest.approx((1 + math.log2(100)) / 32 + 6)
    assert bd.psi_index_map(10, 10, 5) == pytest.approx((5 * 32 + 3 * 100) / 3200)
    assert bd.psi_sham(10, 10, 20, 4) == pytest.approx(0.2 * 3 / 32 + 0.24 + 21 / 100)
    assert bd.psi_sham_worst(10, 10, 20) == pytest.approx(bd.psi_sham(10, 10, 20, 20))
    assert bd.psi_sham_corrected(10, 10, 20, 4) == pytest.approx(
        0.2 * 3 / 32 + 0.24 + (20 * 4 + 11 * 32) / 3200)
    with pytest.raises(sc.ShapeError, match="do not fit"):
        bd.psi_csc(2, 2, 5)
    with pytest.raises(sc.OptionError, match="dictionary"):
        bd.psi_ham(2, 2, 2, dictionary="btree")


@pytest.mark.parametrize("fmt", ["csc", "index_map"])
def test_packed_variants_equal_our_bytes_exactly(fmt):
    W = pruned_quantized_layer(300, 200, 0.2, 16)
    enc = sc.encode(W, format=fmt)
    M = Matrix(W)
    psi = (bd.psi_csc_packed(300, 200, M.nnz) if fmt == "csc"
           else bd.psi_index_map(300, 200, M.all_distinct.k, dictionary="stored"))
    assert round(psi * W.size * 32) == 8 * enc.nbytes


@given(W=matrices(max_side=40))
def test_real_bytes_never_exceed_the_stored_bounds(W):
    r = bd.report(W)
    n, m = W.shape
    for row in r.rows:
        assert sum(row.parts.values()) == 8 * row.nbytes, row.format
        if row.stored is not None and n * m:
            assert 8 * row.nbytes <= row.stored * n * m * r.B + 1e-6, row.format
        if row.format == "sham" and n * m and r.q:
            assert 8 * row.nbytes <= bd.psi_sham_corrected(
                n, m, r.q, r.k_nonzero, r.B, "stored") * n * m * r.B + 1e-6


@given(W=matrices(max_side=40, finite=True))
def test_huffman_payload_between_h0_and_h0_plus_one(W):
    M = Matrix(W)
    for fmt, count, h0 in (("ham", W.size, bd.entropy_h0(M)),
                           ("sham", M.nnz, bd.entropy_h0(M, nonzero_only=True))):
        payload = bd.account(sc.encode(W, format=fmt)).bits["payload"]
        assert h0 * count - 1e-6 <= payload, fmt
        k = (M.all_distinct if fmt == "ham" else M.nonzero_distinct).k
        if k > 1:
            assert payload <= (h0 + 1) * count + 1e-6, fmt


def test_account_roles():
    W = pruned_quantized_layer(256, 128, 0.1, 8)
    enc = sc.encode(W, format="sham")
    a = bd.account(enc)
    n, m = W.shape
    q = np.count_nonzero(W)
    assert a.bits["indices"] == q * width_for(n - 1)
    assert a.bits["pointers"] >= (m + 1) * width_for(q)
    assert a.bits["codebook"] == 8 * 32 + 32 * enc.components()["code_counts"].size
    assert a.bits["payload"] == enc.part.lane_off[-1]
    assert 0 <= a.bits["padding"] < 64 * 6
    assert sum(a.bits.values()) == 8 * a.nbytes


def test_pattern_bits_and_limits():
    assert bd.pattern_bits(4, 5, 7) == pytest.approx(math.log2(math.comb(20, 7)))
    W = pruned_quantized_layer(64, 64, 0.1, 4)
    L = bd.entropy_limits(W)
    q = np.count_nonzero(W)
    assert L.nonzeros == q and L.entries == W.size
    assert L.sparse == pytest.approx(L.pattern + L.h0_nonzero * q)
    assert L.sparse <= L.zero_order + 1e-6  # coding positions apart never costs more
    assert L.huffman_upper == pytest.approx(L.zero_order + W.size)


def test_relative_index_csr_fillers():
    W = np.zeros((1, 20), np.float32)
    W[0, [1, 4, 15]] = [1.0, 2.0, 1.0]
    r = bd.relative_index_csr(W, index_bits=3)  # gaps 2, 3, 11: the last needs one filler
    assert (r.entries, r.fillers, r.value_bits) == (4, 1, 2)
    assert r.total_bits == 4 * (3 + 2) + 2 * 32
    col = bd.relative_index_csr(W.T.copy(), index_bits=3, order="columns")
    assert col.entries == 4
    with pytest.deprecated_call(match="'columns'"):  # the old name still works
        assert bd.relative_index_csr(W.T.copy(), index_bits=3, order="col") == col
    with pytest.raises(sc.OptionError, match="index_bits"):
        bd.relative_index_csr(W, index_bits=0)


def test_report_marks_the_given_encoding_and_filters():
    W = pruned_quantized_layer(128, 64, 0.1, 8)
    enc = sc.encode(W, format="sham", block_symbols=64)
    r = bd.report(enc, formats=["sham", "ham"])
    assert [row.format for row in r.rows] == ["sham", "ham"]
    assert r.row("sham").given and r.row("sham").nbytes == enc.nbytes
    text = str(r)
    assert "sham*" in text and "printed" in text and "deep-comp." in text
    with pytest.raises(sc.UnknownFormatError, match="unknown format"):
        bd.report(W, formats=["zip"])


def test_cli_bounds(tmp_path, capsys):
    W = pruned_quantized_layer(64, 32, 0.2, 4)
    np.save(tmp_path / "w.npy", W)
    np.savez(tmp_path / "m.npz", fc=W, bias=np.ones(3, np.float32))
    sc.save(tmp_path / "m.spc", {"fc": sc.encode(W, format="ham")})
    assert main(["bounds", str(tmp_path / "w.npy"), "--formats", "sham,csc"]) == 0
    out = capsys.readouterr().out
    assert "sham" in out and "csc" in out and "cer" not in out
    assert main(["bounds", str(tmp_path / "m.npz")]) == 0
    assert "bias: skipped" in capsys.readouterr().out
    assert main(["bounds", str(tmp_path / "m.spc")]) == 0
    assert "ham*" in capsys.readouterr().out
    np.save(tmp_path / "v.npy", np.ones(3))
    assert main(["bounds", str(tmp_path / "v.npy")]) == 2
    assert main(["bounds", str(tmp_path / "missing.npy")]) == 2


def test_context_entropy_is_the_model_limit_of_sham_ans():
    from sparsecodec.examples import pruned_quantized_layer

    W = pruned_quantized_layer(300, 200, 0.1, 16)
    enc = sc.encode(W, format="sham_ans", order="columns", gap_model="none", value_model="none")
    ce = sc.bounds.context_entropy(enc)
    assert (ce.order, ce.gap_model, ce.value_model) == ("columns", "none", "none")
    assert ce.total == pytest.approx(enc.info["model_entropy_bits"])
    # with no context the value part is exactly H0 of the nonzeros
    assert ce.value_bits == pytest.approx(sc.bounds.entropy_h0(W, nonzero_only=True)
                                          * np.count_nonzero(W))
    assert ce.total <= 16 * enc.stream.size  # Gibbs: the coder cannot beat its model
    # a richer model never has more entropy (tables are free here)
    rich = sc.bounds.context_entropy(W, order="columns", gap_model="prev+line",
                                     value_model="sig+pos+line")
    assert rich.total <= ce.total + 1e-6
    with pytest.raises(sc.OptionError):
        sc.bounds.context_entropy(W, gap_model="sig")


def test_report_shows_each_format_against_its_own_limit():
    from sparsecodec.examples import pruned_quantized_layer

    W = pruned_quantized_layer(256, 128, 0.1, 32)
    rep = sc.bounds.report(W)
    for fmt in ("ham", "sham", "sham_gap", "sham_ans"):
        row = rep.row(fmt)
        assert row.own_limit is not None and 8 * row.nbytes >= row.own_limit
    q = np.count_nonzero(W)
    assert rep.row("sham").own_limit == pytest.approx(
        sc.bounds.entropy_h0(W, nonzero_only=True) * q + q * 8)  # 8-bit rows for n = 256
    assert rep.row("csr").own_limit is None
    assert "x own" in str(rep)


def test_cer_cser_and_gap_formulas_by_hand():
    # psi_cer(10, 10, q=20, k=4): G = 10 * 3 = 30 groups; 4 x 32 value bits, 20 indices at 4
    # bits (80 -> 128), 31 group pointers at 5 bits (155 -> 192), 11 row pointers at 5 bits
    # (55 -> 64): 512 bits of 3200
    assert bd.psi_cer(10, 10, 20, 4) == pytest.approx(512 / 3200)
    # psi_cser(10, 10, q=8, k=4): G = min(30, 8) = 8; 128 + 8 x 4 (32 -> 64) + 9 x 4 (36 -> 64)
    # + 11 x 4 (44 -> 64) + 8 value indices at 2 bits (16 -> 64) = 384 bits
    assert bd.psi_cser(10, 10, 8, 4) == pytest.approx(384 / 3200)
    W = np.zeros((4, 2), np.float32)
    W[[0, 2], 0] = 1.0
    W[1, 1] = 2.0  # gaps (first row + 1, then differences): [1, 2] and [2]
    assert bd.gap_entropy_bits(W) == pytest.approx(3 * math.log2(3) - 2)
    assert bd.gap_entropy_bits(np.zeros((3, 3), np.float32)) == 0.0


@pytest.mark.parametrize("fmt, psi", [("cer", bd.psi_cer), ("cser", bd.psi_cser)])
def test_cer_bounds_hold_for_real_bytes(fmt, psi):
    rng = np.random.default_rng(8)
    W = (rng.integers(1, 5, (120, 90)) * (rng.random((120, 90)) < 0.2)).astype(np.float32)
    enc = sc.encode(W, format=fmt)
    q = int((W != 0).sum())  # 0 is the most frequent value
    k = np.unique(W).size
    assert 8 * enc.nbytes <= psi(120, 90, q, k) * W.size * 32
    assert 8 * enc.nbytes >= 0.5 * psi(120, 90, q, k) * W.size * 32  # the bound is not loose


@pytest.mark.parametrize("density", [0.10, 0.50])
@pytest.mark.parametrize("spacing", ["equal_mass", "uniform"])
def test_sham_bytes_are_the_formula_plus_offsets_and_padding(density, spacing):
    """The correctness half of bench/test_foundation.py's sham check, at 512x512: sHAM's bytes
    are nnz x average code length + nnz x ceil(log2 n) + (m + 1) x ceil(log2(nnz + 1)) bits and
    the codebook, plus lane offsets and word padding (0.05-0.21% here, at most 1%)."""
    from sparsecodec.examples import pruned_quantized_layer

    W = pruned_quantized_layer(512, 512, density, 32, seed=0, spacing=spacing)
    enc = sc.encode(W, format="sham")
    q, n = enc.nnz, 512
    formula_bits = (int(enc.part.lane_off[-1]) + q * math.ceil(math.log2(n))
                    + (n + 1) * math.ceil(math.log2(q + 1)) + 8 * enc.part.symbols.nbytes)
    assert formula_bits / 8 <= enc.nbytes <= 1.01 * formula_bits / 8


def test_entropy_of_matrices_without_nonzeros_is_zero_and_silent():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for W in (np.zeros((3, 4), np.float32), np.zeros((0, 5)), np.zeros((2, 0), np.float16)):
            lim = bd.entropy_limits(W)
            assert (lim.h0, lim.h0_nonzero, lim.sparse) == (0.0, 0.0, 0.0)


def test_each_format_answers_for_its_own_bounds(monkeypatch):
    """bounds.py holds formulas and the report, no per-format branches: a format registered
    by other code gets its psi and own limit from its class alone."""
    import inspect
    import re

    from sparsecodec.formats import base
    from sparsecodec.formats.dense import Dense
    from sparsecodec.formats.ham import HAM

    assert not re.search(r"""(fmt|format) (==|in|!=) ["'(]""", inspect.getsource(bd))

    class Twin(HAM):  # ham's coding under another name: the report must treat it as ham
        format = "twin"

    class Plain(Dense):
        format = "plain"

        def psi_bounds(self, M):
            return base.PsiBounds(0.5, 0.25, 0.125)

    monkeypatch.setitem(base._REGISTRY, "twin", Twin)
    monkeypatch.setitem(base._REGISTRY, "plain", Plain)
    W = pruned_quantized_layer(64, 32, 0.2, 8)
    r = bd.report(W, ["ham", "twin", "plain"])
    ham, twin, plain = r.row("ham"), r.row("twin"), r.row("plain")
    assert (twin.printed, twin.stored, twin.own_limit, twin.nbytes) == \
        (ham.printed, ham.stored, ham.own_limit, ham.nbytes)
    k = Matrix(W).all_distinct.k
    assert ham.printed == bd.psi_ham(64, 32, k) and ham.stored == bd.psi_ham(64, 32, k, 32,
                                                                              "stored")
    assert (plain.printed, plain.corrected, plain.stored, plain.own_limit) == (0.5, 0.25,
                                                                               0.125, None)
