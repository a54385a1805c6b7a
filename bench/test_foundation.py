"""Benchmarks of the foundation: Huffman decode speed, sHAM products against scipy and
numpy, encode time, and sHAM's bytes against its formula."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import NOTES, RESULTS, interleaved_best, layer
from dahuffman import HuffmanCodec

import sparsecodec as sc
from sparsecodec.bounds import entropy_h0
from sparsecodec.coding import huffman as hf
from sparsecodec.formats.base import Matrix

N = 4096
STREAM = 1 << 24  # 16M symbols


def _stream(kind: str):
    """16M symbols distributed like the entries of a 10%-dense, 32-level layer (HAM-like, 33
    symbols, zero at 90%) or like its nonzeros alone (sHAM-like, 32 symbols)."""
    W = layer(N, 0.10)
    d = Matrix(W)
    dist = d.all_distinct if kind == "ham" else d.nonzero_distinct
    p = dist.counts / dist.counts.sum()
    sym = np.random.default_rng(5).choice(dist.k, STREAM, p=p).astype(np.int32)
    freq = np.bincount(sym, minlength=dist.k)
    starts = np.arange(0, STREAM + 1, hf.LANES << 12).astype(np.int64)
    part = hf.HuffmanPart.encode(np.arange(dist.k), freq, sym, starts, hf.MAX_CODE_LENGTH)
    return sym, starts, part


@pytest.mark.parametrize("kind", ["sham", "ham"])
def test_huffman_decode_one_core(record, kind):
    sym, starts, part = _stream(kind)
    t = part.tables
    out = np.empty(STREAM, np.int32)
    args = (part.words, part.lane_off, starts, t.table, t.limit, t.base, t.first, t.bits,
            t.maxlen, out)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        record(f"huffman_{kind}", lambda: hf.decode_all(*args), rounds=5)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(part.symbols[out], sym)
    key = "huffman_msyms_1core" if kind == "sham" else "huffman_ham_msyms_1core"
    RESULTS[key] = STREAM / RESULTS[f"huffman_{kind}"] / 1e6
    NOTES[f"{kind}-like stream"] = (f"{8 * part.words.nbytes / STREAM:.3f} bits/symbol, "
                                    f"longest code {t.maxlen} bits")


def test_dahuffman_decode(record):
    sym, _, _ = _stream("sham")
    sub = sym[: 1 << 18].astype(np.uint8).tobytes()  # pure Python: a 256K-symbol sample
    freq = dict(enumerate(np.bincount(sym[: 1 << 18]).tolist()))
    # dahuffman's own EOF symbol ends the stream (an existing symbol as EOF would stop early)
    codec = HuffmanCodec.from_frequencies({k: v for k, v in freq.items() if v})
    enc = codec.encode(sub)
    assert codec.decode(enc, concat=bytes) == sub
    record("dahuffman", lambda: codec.decode(enc, concat=bytes), rounds=2)
    RESULTS["dahuffman_msyms"] = len(sub) / RESULTS["dahuffman"] / 1e6


_OPS: dict[tuple, dict] = {}


def _ops(density: float, spacing: str = "equal_mass") -> dict:
    """The operations compared at one density, built once (operands shared by all cases)."""
    if (density, spacing) not in _OPS:
        W = layer(N, density, spacing=spacing)
        rng = np.random.default_rng(1)
        x = rng.standard_normal(N).astype(np.float32)
        X = rng.standard_normal((32, N)).astype(np.float32)
        sham = sc.encode(W, format="sham")
        csc = sc.encode(W, format="csc")
        csr = sp.csr_matrix(W)
        csrT = sp.csr_matrix(W.T)
        ref = x.astype(np.float64) @ W.astype(np.float64)
        assert np.allclose(sham.rmatvec(x), ref, rtol=1e-5, atol=1e-4)
        threads = numba.get_num_threads()

        def one_thread(fn):
            def run():
                numba.set_num_threads(1)
                try:
                    return fn()
                finally:
                    numba.set_num_threads(threads)
            return run

        _OPS[density, spacing] = {
            "sham_vec": lambda: sham.rmatvec(x),
            "sham_vec_1t": one_thread(lambda: sham.rmatvec(x)),
            "scipy_xcsr": lambda: x @ csr,
            "scipy_csrT": lambda: csrT @ x,
            "csc_vec": lambda: csc.rmatvec(x),
            "sham_mat": lambda: sham.rmatmul(X),
            "dense_mat": lambda: X @ W,
        }
    return _OPS[density, spacing]


@pytest.mark.parametrize("density", [0.10, 0.50])
@pytest.mark.parametrize("case", ["sham_vec", "sham_vec_1t", "scipy_xcsr", "scipy_csrT", "csc_vec",
                                  "sham_mat", "dense_mat"])
def test_products(record, case, density):
    rounds = 10 if case.endswith("mat") else 30
    record(f"{case}_{round(100 * density)}", _ops(density)[case], rounds=rounds)


@pytest.mark.parametrize("density", [0.10, 0.50])
def test_interleaved_ratios(density):
    """The ratio figures: contenders timed alternately, so machine drift cancels out."""
    ops = _ops(density)
    for name, t in interleaved_best(ops).items():
        RESULTS[f"il_{name}_{round(100 * density)}"] = t


def test_interleaved_ratio_skewed_values():
    """sham.rmatvec against scipy when the 32 values are skewed (codes of several lengths)."""
    ops = _ops(0.10, "uniform")
    best = interleaved_best({k: ops[k] for k in ("sham_vec", "scipy_xcsr")})
    NOTES["sham.rmatvec / scipy, 10%, skewed values"] = (
        f"{best['sham_vec'] / best['scipy_xcsr']:.2f}")


@pytest.mark.parametrize("fmt", ["ham", "sham"])
def test_encode_16M(record, fmt):
    W = layer(N, 0.10)
    record(f"encode_{fmt}_16M", lambda: sc.encode(W, format=fmt), rounds=3)


@pytest.mark.parametrize("spacing", ["equal_mass", "uniform"])
@pytest.mark.parametrize("density", [0.10, 0.50])
def test_sham_bytes_against_formula(density, spacing):
    """sHAM bytes vs nnz*avg code length + nnz*ceil(log2 n) + (m+1)*ceil(log2(nnz+1)) bits
    + codebook: the difference is the lane offsets and word padding, nothing hidden.
    ``uniform`` level spacing gives skewed value counts, so codes of several lengths."""
    W = layer(N, density, spacing=spacing)
    enc = sc.encode(W, format="sham")
    n, m = W.shape
    q = enc.nnz
    code = hf.CanonicalCode.from_counts(enc.part.counts)
    payload = int(enc.part.lane_off[-1])
    avg = payload / q
    formula_bits = (q * avg + q * math.ceil(math.log2(n)) + (m + 1) * math.ceil(math.log2(q + 1))
                    + 8 * enc.part.symbols.nbytes)
    over = enc.nbytes / (formula_bits / 8) - 1
    NOTES[f"sham bytes, density {density:.0%}, {spacing} levels"] = (
        f"{enc.nbytes:,} B vs formula {formula_bits / 8:,.0f} B: {100 * over:+.3f}% "
        f"(avg code {avg:.3f} bits over {code.k} values, H0 "
        f"{entropy_h0(W, nonzero_only=True):.3f}, longest {code.lengths.max()})")
    assert over < 0.03
