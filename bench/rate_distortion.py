"""Rate-distortion of every quantizer on one large synthetic layer, with the rate measured as the
bits per weight that sHAM really stores (every byte of the encoded matrix, codebook included).

    python bench/rate_distortion.py [--rows 2048] [--cols 1024] [--out docs/img]

Layer: Laplacian weights (trained layers are closer to Laplacian than Gaussian), std
1/sqrt(rows), float32, seed 0. For pruning p in {0, 50, 90}% and k in {2, 4, ..., 1024}, each
quantizer's MSE (against the pruned layer, over all entries) is plotted against sHAM's bits per
weight (the CSV also has the bits of the smallest format, `auto`'s choice). ECSQ is run at the
entropy that k-means reached at the same k (same rate, lower distortion is the point of it).
GWK gets a synthetic importance (heavier on 5% of the weights) and is judged here by plain MSE,
which it does not minimise. Writes rate_distortion.png and rate_distortion.csv into --out and
prints the table.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from figures import pyplot, write_csv

import sparsecodec as sc
from sparsecodec import quantize as qz
from sparsecodec.progress import progress

PRUNING = (0, 50, 90)
KS = tuple(2 ** i for i in range(1, 11))
METHODS = ("uniform", "kmeans", "optimal", "gwk", "probabilistic", "ecsq")
STYLE = {"uniform": "s-", "kmeans": "o-", "optimal": "x--", "gwk": "d-",
         "probabilistic": "v-", "ecsq": "^-"}


def layer(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    W = (rng.laplace(scale=1 / np.sqrt(2 * rows), size=(rows, cols))).astype(np.float32)
    importance = np.abs(rng.standard_normal(W.shape))
    importance[rng.random(W.shape) < 0.05] *= 20
    return W, importance


def quantize(method: str, P: np.ndarray, k: int, importance: np.ndarray,
             kmeans_entropy: float) -> qz.Quantized:
    if method == "gwk":
        return qz.gwk(P, k, importance)
    if method == "ecsq":
        return qz.ecsq(P, max(4 * k, 8), entropy=kmeans_entropy)
    return qz.quantize(P, method, k)


def sweep(W: np.ndarray, importance: np.ndarray) -> list[dict]:
    rows = []
    steps = len(PRUNING) * len(KS) * len(METHODS)
    done = 0
    for p in PRUNING:
        P = qz.prune(W, p).weights
        prune_mse = float(((W.astype(np.float64) - P) ** 2).mean())
        for k in KS:
            km_entropy = None
            for method in METHODS:
                progress(done, steps, f"p={p}% k={k} {method}")
                t = time.perf_counter()
                q = quantize(method, P, k, importance, km_entropy)
                seconds = time.perf_counter() - t
                if method == "kmeans":
                    km_entropy = q.entropy_nonzero
                enc = sc.encode(q.values, format="sham")
                sizes = sc.sizes(q.values)
                best = min(sizes, key=sizes.__getitem__)
                rows.append({"pruning": p, "k": k, "method": method, "levels": q.k,
                             "sham_bits_per_weight": enc.bits_per_weight,
                             "best_format": best,
                             "best_bits_per_weight": 8 * sizes[best] / W.size, "mse": q.mse,
                             "entropy": q.entropy, "prune_mse": prune_mse,
                             "seconds": seconds})
                done += 1
    progress(steps, steps, "done")
    return rows


def plot(rows: list[dict], path: str) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, len(PRUNING), figsize=(15, 4.6), sharey=False)
    for ax, p in zip(axes, PRUNING, strict=True):
        sel = [r for r in rows if r["pruning"] == p]
        for method in METHODS:
            pts = sorted((r["sham_bits_per_weight"], r["mse"]) for r in sel
                         if r["method"] == method and r["mse"] > 0)
            if pts:
                ax.plot(*zip(*pts, strict=True), STYLE[method], label=method, ms=4, lw=1.2)
        if p:
            ax.axhline(sel[0]["prune_mse"], color="grey", ls=":", lw=1,
                       label="MSE of the pruning itself")
        ax.set_yscale("log")
        ax.set_title(f"{p}% pruned" if p else "not pruned")
        ax.set_xlabel("bits per weight stored by sHAM (all bytes)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("quantization MSE (vs the pruned layer)")
    axes[-1].legend(fontsize=8)
    fig.suptitle("Rate-distortion of the quantizers, k = 2 ... 1024 (sparsecodec "
                 "bench/rate_distortion.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=1024)
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    W, importance = layer(args.rows, args.cols)
    rows = sweep(W, importance)
    write_csv(rows, args.out, "rate_distortion.csv")
    plot(rows, os.path.join(args.out, "rate_distortion.png"))
    print(f"{'p%':>3} {'k':>5} {'method':<14}{'levels':>7}{'sHAM b/w':>10}{'best b/w':>10} "
          f"{'(format)':<10}{'MSE':>11}{'H0 b/w':>8}{'seconds':>9}")
    for r in rows:
        print(f"{r['pruning']:>3} {r['k']:>5} {r['method']:<14}{r['levels']:>7}"
              f"{r['sham_bits_per_weight']:>10.3f}{r['best_bits_per_weight']:>10.3f} "
              f"{r['best_format']:<10}{r['mse']:>11.3e}{r['entropy']:>8.3f}{r['seconds']:>9.3f}")


if __name__ == "__main__":
    main()
