"""Lossless bytes on real-size layers against NNCodec, both orientations, and against a static
rANS code at the zero-order entropy.

    python bench/lossless_real.py [--nncodec-python PATH] [--out docs/img]

Layers (made here, float32): Gaussian, Laplacian, and Gaussian with a log-normal scale per row
and per column, each at 384x384, 384x1536 and 1536x384; pruned to keep 100, 50 or 10%
(magnitude), then k-means quantized to 16, 32 or 256 values: 81 cases, the shapes of a
BERT-style encoder's layers.

- ours: ``sc.encode`` (format ``auto``), the stored bytes;
- NNCodec 2.1.3: the levels as an int32 tensor (zero at level 0, the others by rank of value),
  lossless, given W as is and transposed (the torch layout); its bitstream plus the float32
  values of the levels, the smaller orientation counted;
- rANS (H0): a static 4-lane rANS code of every entry with its table and the values
  (``bench/vs_nncodec.rans_h0_bytes``, blocks of 64K entries).

NNCodec needs numpy < 2: it runs in its own environment (``--nncodec-python``), which gets
the level matrices and returns its bytes. Writes ``lossless_real.csv``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHAPES = ((384, 384), (384, 1536), (1536, 384))
KEEP = (100, 50, 10)
LEVELS = (16, 32, 256)


def levels_of(Q: np.ndarray) -> tuple[np.ndarray, int]:
    """int32 levels (zero at 0, the others by rank of value) and the nonzero value count."""
    vals, inv = np.unique(Q, return_inverse=True)
    zero = int(np.searchsorted(vals, 0.0))
    has_zero = zero < vals.size and vals[zero] == 0
    return (inv.reshape(Q.shape) - zero).astype(np.int32), vals.size - int(has_zero)


def nncodec_child(inp: str, out: str) -> None:
    """(In NNCodec's environment.) Bytes of every level matrix of ``inp``, as is and
    transposed."""
    sys.path.insert(0, str(HERE))
    from nncodec_stub import load_nncodec

    nnc = load_nncodec()
    res = {}
    with np.load(inp) as d:
        for name in d.files:
            L = d[name]
            got = {}
            for orient, A in (("as_is", L), ("transposed", np.ascontiguousarray(L.T))):
                bs = nnc.compress({"w": A}, bitstream_path=None, return_bitstream=True,
                                  verbose=False)
                back = np.asarray(nnc.decompress(bytearray(bs))["w"])
                assert np.array_equal(back, A), "NNCodec did not round-trip"
                got[orient] = len(bs)
            res[name] = got
    Path(out).write_text(json.dumps(res))


def cases() -> dict[str, np.ndarray]:
    from sparsecodec.quantize import kmeans, prune

    rng = np.random.default_rng(0)
    out = {}
    for n, m in SHAPES:
        G = rng.standard_normal((n, m))
        base = {"gauss": G, "laplace": rng.laplace(size=(n, m)),
                "scaled": G * np.exp(rng.normal(0, 0.5, (n, 1)))
                * np.exp(rng.normal(0, 0.7, (1, m)))}
        for kind, W in base.items():
            W = (W * 0.02).astype(np.float32)
            for keep in KEEP:
                P = W if keep == 100 else prune(W, 100 - keep).weights.astype(np.float32)
                for k in LEVELS:
                    out[f"{kind} {n}x{m} keep{keep} k{k}"] = kmeans(P, k, seed=0).values
    return out


def main() -> None:
    from nncodec_stub import parse_args

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "img"))
    args = parse_args(ap, nncodec_child)
    if args is None:
        return
    from figures import write_csv
    from vs_nncodec import rans_h0_bytes

    import sparsecodec as sc

    Qs = cases()
    theirs: dict[str, dict] = {}
    if args.nncodec_python:
        from nncodec_stub import in_nncodec_env

        theirs = in_nncodec_env(args.nncodec_python, __file__,
                                {name: levels_of(Q)[0] for name, Q in Qs.items()})
    rows = []
    print(f"{'case':<34}{'auto':>9}{'format':>10}{'NNC as is':>10}{'NNC T':>9}{'H0 rANS':>9}"
          f"{'/NNC':>7}{'/H0':>7}")
    for name, Q in Qs.items():
        enc = sc.encode(Q)
        h0 = rans_h0_bytes(Q)
        row = {"case": name, "auto_bytes": enc.nbytes, "auto_format": enc.format,
               "rans_h0_bytes": h0}
        if name in theirs:
            book = 4 * levels_of(Q)[1]
            row["nncodec_as_is"] = theirs[name]["as_is"] + book
            row["nncodec_transposed"] = theirs[name]["transposed"] + book
            row["ratio_nncodec"] = round(enc.nbytes / min(row["nncodec_as_is"],
                                                          row["nncodec_transposed"]), 4)
        row["ratio_h0"] = round(enc.nbytes / h0, 4)
        rows.append(row)
        print(f"{name:<34}{enc.nbytes:>9}{enc.format:>10}{row.get('nncodec_as_is', 0):>10}"
              f"{row.get('nncodec_transposed', 0):>9}{h0:>9}{row.get('ratio_nncodec', 0):>7.3f}"
              f"{row['ratio_h0']:>7.3f}")
    r = np.array([x["ratio_h0"] for x in rows])
    print(f"\nover rANS (H0): median {np.median(r):.3f}, above 1 in {(r > 1).sum()} of {r.size}")
    if theirs:
        q = np.array([x["ratio_nncodec"] for x in rows])
        print(f"over NNCodec (better orientation): median {np.median(q):.3f}, "
              f"range {q.min():.3f}-{q.max():.3f}, above 1 in {(q > 1).sum()} of {q.size}, "
              f"above 0.97 in {(q > 0.97).sum()}")
    print(write_csv(rows, args.out, "lossless_real.csv"))


if __name__ == "__main__":
    main()
