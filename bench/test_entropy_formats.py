"""sham_gap and sham_ans against scipy CSR on the 4096 x 4096 layer (10% nonzeros, 32 values):
bytes, decode, and x @ W / X @ W (b = 32), interleaved in one run (the targets: products
within 2x of scipy; decoding far faster than NNCodec, which bench/vs_nncodec.py measures)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from conftest import NOTES, interleaved_best, layer

import sparsecodec as sc


def test_entropy_coded_formats_vs_scipy(record):
    W = layer(4096, 0.10)
    encs = {f: sc.encode(W, format=f) for f in ("sham_gap", "sham_ans")}
    for e in encs.values():
        assert np.array_equal(np.ascontiguousarray(e.decode()).view(np.uint32),
                              W.view(np.uint32))
    A = sp.csr_matrix(W.T.astype(np.float64))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(W.shape[0])
    X = rng.standard_normal((32, W.shape[0]))
    Xt = np.ascontiguousarray(X.T)
    vec = interleaved_best({"scipy": lambda: A @ x,
                            **{f: (lambda e=e: e.rmatvec(x)) for f, e in encs.items()}}, 20)
    mat = interleaved_best({"scipy": lambda: A @ Xt,
                            **{f: (lambda e=e: e.rmatmul(X)) for f, e in encs.items()}}, 5)
    record("sham_ans_decode", encs["sham_ans"].decode, rounds=5)
    for f, e in encs.items():
        NOTES[f"{f}, 4096^2 at 10% with 32 values"] = (
            f"{e.bits_per_weight:.3f} bits/weight; x @ W {1e3 * vec[f]:.2f} ms "
            f"= {vec[f] / vec['scipy']:.2f}x scipy CSR; X @ W (b = 32) {1e3 * mat[f]:.1f} ms "
            f"= {mat[f] / mat['scipy']:.2f}x scipy")
