"""Per-output-channel quantized layers: bytes of ``scaled`` against ``grid`` and ``sham_ans``,
and the time of ``x @ W`` on each against dense numpy, in one interleaved run.

    python bench/per_channel.py [--out docs/img] [--rounds 30]

Layers (made here, float32): Gaussian weights with a log-normal scale per column at 384x384,
384x1536 and 1536x384; a 384x384 Laplacian layer with scales per row and per column; the demo
model's two hidden layers. Each is pruned to keep 100, 50 or 10% of its weights (magnitude),
then quantized per column: ``integer(bits, per="column")`` at 4, 6 and 8 bits, and the
per-column trellis (``dependent`` with step = 0.3 x the column's standard deviation). Sizes
count everything stored. Times are the best of ``--rounds`` interleaved calls of
``x @ enc`` for one x (``bench/conftest.interleaved_best``), as ratios to numpy's ``x @ W``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from conftest import interleaved_best
from figures import write_csv

import sparsecodec as sc
from sparsecodec.quantize import dependent, integer, prune

HERE = Path(__file__).resolve().parent


def layers() -> dict[str, np.ndarray]:
    r = np.random.default_rng(0)
    out = {}
    for n, m in ((384, 384), (384, 1536), (1536, 384)):
        out[f"gauss-cols {n}x{m}"] = r.standard_normal((n, m)) * 0.02 * np.exp(
            r.normal(0, 0.7, (1, m)))
    out["laplace-rows-cols 384x384"] = (r.laplace(size=(384, 384)) * 0.02
                                        * np.exp(r.normal(0, 0.5, (384, 1)))
                                        * np.exp(r.normal(0, 0.7, (1, 384))))
    with np.load(HERE.parent / "sparsecodec" / "data" / "digits_mlp.npz") as d:
        out["demo fc1 64x256"] = d["fc1.weight"]
        out["demo fc2 256x256"] = d["fc2.weight"]
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def quantized(W: np.ndarray) -> dict[str, np.ndarray]:
    out = {f"int{b}": integer(W, b, per="column").values for b in (4, 6, 8)}
    std = W.std(axis=0)
    steps = 0.3 * np.where(std > 0, std, 1.0)
    out["trellis"] = dependent(W, steps).values
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "img"))
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    rows = []
    print(f"{'layer':<26}{'keep':>5}{'quant':>8}{'grid':>9}{'sham_ans':>10}{'scaled':>9}"
          f"{'auto':>8}{'b/w':>6}{'t grid':>8}{'t scaled':>9}")
    for name, W in layers().items():
        x = np.random.default_rng(1).standard_normal(W.shape[0])
        for keep in (100, 50, 10):
            P = W if keep == 100 else prune(W, 100 - keep).weights.astype(np.float32)
            for q, Q in quantized(P).items():
                encs = {}
                for f in ("grid", "sham_ans", "scaled"):
                    try:
                        encs[f] = sc.encode(Q, format=f)
                    except sc.EncodeError:  # sham_ans: over 2^16 values in a context
                        pass
                auto = sc.encode(Q).format
                t = interleaved_best({"dense": lambda Q=Q, x=x: x @ Q,
                                      "grid": lambda e=encs["grid"], x=x: x @ e,
                                      "scaled": lambda e=encs["scaled"], x=x: x @ e},
                                     args.rounds)
                row = {"layer": name, "keep": keep, "quantizer": q,
                       **{f"{f}_bytes": encs[f].nbytes if f in encs else float("nan")
                          for f in ("grid", "sham_ans", "scaled")}, "auto": auto,
                       "scaled_bits": round(encs["scaled"].bits_per_weight, 3),
                       "grid_over_dense": round(t["grid"] / t["dense"], 2),
                       "scaled_over_dense": round(t["scaled"] / t["dense"], 2)}
                rows.append(row)
                print(f"{name:<26}{keep:>5}{q:>8}{row['grid_bytes']:>9}"
                      f"{row['sham_ans_bytes']:>10.0f}{row['scaled_bytes']:>9}{auto:>8}"
                      f"{row['scaled_bits']:>6.2f}{row['grid_over_dense']:>8.2f}"
                      f"{row['scaled_over_dense']:>9.2f}")
    smallest = sum(r["scaled_bytes"] <= np.nanmin([r["grid_bytes"], r["sham_ans_bytes"]])
                   for r in rows)
    print(f"\nscaled is the smallest of the three in {smallest} of {len(rows)} cases; "
          f"auto chose scaled in {sum(r['auto'] == 'scaled' for r in rows)}")
    for q in ("int4", "int6", "int8", "trellis"):
        mine = [r for r in rows if r["quantizer"] == q]
        ratio = [r["scaled_bytes"] / r["grid_bytes"] for r in mine]
        print(f"{q:>8}: scaled / grid bytes, median {np.median(ratio):.3f} "
              f"(range {min(ratio):.3f}-{max(ratio):.3f})")
    for keep in (100, 50, 10):
        t = [r["scaled_over_dense"] for r in rows if r["keep"] == keep]
        g = [r["grid_over_dense"] for r in rows if r["keep"] == keep]
        print(f"keep {keep:>3}%: x @ W time / dense numpy: scaled median {np.median(t):.1f} "
              f"({min(t):.1f}-{max(t):.1f}), grid median {np.median(g):.2f}")
    print(write_csv(rows, args.out, "per_channel.csv"))


if __name__ == "__main__":
    main()
