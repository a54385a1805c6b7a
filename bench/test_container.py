"""Container benchmark: a 100M-parameter synthetic model (24 layers of 2048x2048, pruned to 10%,
32 values each, plus biases) packed with sparsecodec and with safetensors float32, in one run.

Reports file size, time to load everything, and time from open to the first x @ W."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import NOTES, interleaved_best

import sparsecodec as sc
from sparsecodec.examples import pruned_quantized_layer

st_numpy = pytest.importorskip("safetensors.numpy")

LAYERS, N = 24, 2048  # 24 * 2048^2 = 100.7M weights


def test_100m_model(tmp_path):
    dense, packed = {}, {}
    for i in range(LAYERS):
        W = pruned_quantized_layer(N, N, 0.10, 32, seed=i)
        b = np.linspace(-0.1, 0.1, N, dtype=np.float32)
        dense[f"l{i}.weight"], dense[f"l{i}.bias"] = W, b
        packed[f"l{i}.weight"], packed[f"l{i}.bias"] = sc.encode(W), b
    params = sum(a.size for a in dense.values())
    ours, theirs = tmp_path / "model.spc", tmp_path / "model.safetensors"
    t = time.perf_counter()
    sc.save(ours, packed, metadata={"model": "synthetic-100M"})
    t_save = time.perf_counter() - t
    st_numpy.save_file(dense, str(theirs))
    formats = sorted({v.format for v in packed.values() if isinstance(v, sc.Encoded)})

    x = np.ones(N, np.float32)

    def first_product():
        with sc.open(ours) as f:
            return x @ f["l0.weight"]

    # every contender in the same interleaved rounds: they see the same machine drift
    best = interleaved_best({"load": lambda: sc.load(ours),
                             "load_nv": lambda: sc.load(ours, verify=False),
                             "st": lambda: st_numpy.load_file(str(theirs)),
                             "first": first_product}, rounds=3)
    t_load, t_load_nv, t_st, t_first = best["load"], best["load_nv"], best["st"], best["first"]
    for k in ("l0.weight", "l23.weight"):  # what was stored is what comes back
        assert np.array_equal(sc.load(ours)[k].decode(), dense[k])
    size, st_size = ours.stat().st_size, theirs.stat().st_size
    NOTES["container, 100M params"] = (
        f"{params / 1e6:.1f}M params ({'/'.join(formats)}): {size / 2**20:.1f} MiB vs "
        f"safetensors f32 {st_size / 2**20:.1f} MiB ({st_size / size:.1f}x smaller, "
        f"{8 * size / params:.3f} bits/param); save {t_save:.2f} s; load all {t_load:.3f} s "
        f"(verified), {t_load_nv:.4f} s (unverified) vs safetensors.numpy.load_file "
        f"{t_st:.3f} s; open to first x @ W {1e3 * t_first:.1f} ms")
    assert size < st_size / 10
