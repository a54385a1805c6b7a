"""CER and CSER products (sum the inputs of a group, multiply once per value) against scipy
CSR and sHAM on the same layer, interleaved in one run: 4096 x 4096, 10% nonzeros, 32 values."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from conftest import NOTES, interleaved_best, layer

import sparsecodec as sc

N = 4096


def test_shared_value_products():
    W = layer(N, 0.10)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(N).astype(np.float32)
    X = rng.standard_normal((32, N)).astype(np.float32)
    csr = sp.csr_matrix(W)
    encs = {f: sc.encode(W, format=f) for f in ("cer", "cser", "sham")}
    fns = {f"{f} x@W": (lambda e=e: x @ e) for f, e in encs.items()}
    fns["scipy x@csr"] = lambda: x @ csr
    vec = interleaved_best(fns, rounds=20)
    mats = {f"{f} X@W": (lambda e=e: X @ e) for f, e in encs.items()}
    mats["numpy dense X@W"] = lambda: X @ W
    mat = interleaved_best(mats, rounds=5)
    base_v, base_m = vec["scipy x@csr"], mat["numpy dense X@W"]
    lines = [f"{'':<10}{'bytes':>12}{'x@W ms':>9}{'/ scipy':>9}{'X@W(b=32) ms':>14}{'/ dense':>9}"]
    for f, e in encs.items():
        lines.append(f"{f:<10}{e.nbytes:>12,}{1e3 * vec[f + ' x@W']:>9.2f}"
                     f"{vec[f + ' x@W'] / base_v:>9.2f}{1e3 * mat[f + ' X@W']:>14.2f}"
                     f"{mat[f + ' X@W'] / base_m:>9.2f}")
    lines.append(f"{'scipy/np':<10}{csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes:>12,}"
                 f"{1e3 * base_v:>9.2f}{1.0:>9.2f}{1e3 * base_m:>14.2f}{1.0:>9.2f}")
    NOTES["CER/CSER products, 4096^2, 10%, 32 values (best of 20 / 5, interleaved)"] = (
        "\n    " + "\n    ".join(lines))
