"""The PQ speed target under pytest: d = 8, k = 256 on 4096 x 4096, LUT ``x @ W`` against
numpy dense on the decoded matrix (goal: 2x faster; printed, not asserted). The full sweep
and the rate-distortion figure: ``python bench/pq.py``."""

from __future__ import annotations

from conftest import NOTES
from pq import speed


def test_pq_lut_speed():
    r = speed(configs=((8, 256),))[0]
    NOTES["PQ d=8 k=256, 4096^2 (best of 20 interleaved)"] = (
        f"{r['bits_per_weight']:.3f} bits/weight, rel. error {r['rel_error']:.3f}; x@W "
        f"{r['rmatvec_ms']:.2f} ms vs dense {r['dense_rmatvec_ms']:.2f} ms "
        f"({r['dense_rmatvec_ms'] / r['rmatvec_ms']:.2f}x; goal 2x); X@W(b=32) "
        f"{r['rmatmul32_ms']:.1f} ms vs dense {r['dense_rmatmul32_ms']:.1f} ms")
