"""rANS against canonical Huffman on the same 16M symbols (a HAM-like stream: the entries of
a 10%-dense, 32-value layer), both decoded block-parallel in one interleaved run: bits per
symbol and decode speed."""

from __future__ import annotations

import numpy as np
from conftest import NOTES, interleaved_best, layer

from sparsecodec.coding import huffman as hf
from sparsecodec.coding import rans, rans_static
from sparsecodec.formats.base import Matrix

N = 1 << 24


def test_rans_vs_huffman():
    d = Matrix(layer(4096, 0.10)).all_distinct
    p = d.counts / d.counts.sum()
    sym = np.random.default_rng(5).choice(d.k, N, p=p)
    counts = np.bincount(sym, minlength=d.k)
    starts = np.arange(0, N + 1, 1 << 16).astype(np.int64)
    freq = rans.quantize_freqs(counts, 12)
    cum = rans.cumulative(freq)
    words, offsets = rans_static.encode_blocks(sym, starts, freq, cum, 12)
    table = rans_static.table(freq, 12)
    out = np.empty(N, np.int32)
    part = hf.HuffmanPart.encode(np.arange(d.k), counts, sym.astype(np.int32), starts,
                                 hf.MAX_CODE_LENGTH)
    hout = np.empty(N, np.uint32)
    args = part.kernel_args()
    best = interleaved_best({
        "rans": lambda: rans_static.decode_blocks(words, offsets, starts, table, 12, out),
        "huffman": lambda: hf.decode_all(args[0], args[1], starts, *args[2:], hout)}, rounds=5)
    assert np.array_equal(out, sym)
    h0 = float(-(p * np.log2(p)).sum())
    NOTES["rANS vs Huffman, 16M symbols of a 10%/32-value layer (2 cores, best of 5)"] = (
        f"H0 {h0:.4f} bits/symbol; rANS {16 * words.size / N:.4f} bits, "
        f"{N / best['rans'] / 1e6:.0f} M symbols/s; Huffman {64 * part.words.size / N:.4f} "
        f"bits, {N / best['huffman'] / 1e6:.0f} M symbols/s")
