"""Product quantization: speed of the lookup-table products and rate-distortion against
scalar quantization (with and without pruning).

    python bench/pq.py [--out docs/img] [--skip-speed] [--skip-plot]

1. Speed, on a 4096 x 4096 Gaussian float32 layer: for (d, k) in (4,256), (8,256), (16,256),
   (8,4096), (16,65536), the bits per weight stored, the relative Frobenius error, and
   ``x @ enc`` / ``X @ enc`` (b = 32) against numpy on the decoded matrix, interleaved in one
   run (``bench/conftest.interleaved_best``). Goal: at d = 8, k = 256 the LUT ``x @ W`` at
   least 2x faster than dense.
2. Rate-distortion (pq_rate_distortion.png / .csv in --out): relative Frobenius error against
   the bits per weight really stored, for PQ (d = 4, 8, 16; k = 16 .. 1024), scalar k-means
   with the smallest lossless format, and pruning (50, 75, 90%) + k-means + the smallest format
   (sHAM or HAM), on a 1024 x 1024 Gaussian layer and on a trained 512 x 512 layer (the hidden
   layer of an MLP trained here, in numpy, on a synthetic teacher task: nothing downloaded).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from conftest import interleaved_best
from figures import pyplot, write_csv

import sparsecodec as sc
from sparsecodec import quantize as qz
from sparsecodec.progress import progress

SPEED_CONFIGS = ((4, 256), (8, 256), (16, 256), (8, 4096), (16, 65536))


def rel_err(W: np.ndarray, D: np.ndarray) -> float:
    W64 = W.astype(np.float64)
    return float(np.linalg.norm(W64 - D.astype(np.float64)) / np.linalg.norm(W64))


def speed(n: int = 4096, configs: tuple = SPEED_CONFIGS) -> list[dict]:
    W = (np.random.default_rng(0).standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n).astype(np.float32)
    X = rng.standard_normal((32, n)).astype(np.float32)
    rows = []
    for i, (d, k) in enumerate(configs):
        progress(i, len(configs), f"training d={d} k={k}")
        enc = qz.product_quantize(W, d, k)
        D = enc.decode()
        vec = interleaved_best({"lut": lambda e=enc: x @ e, "dense": lambda D=D: x @ D},
                               rounds=20)
        mat = interleaved_best({"lut": lambda e=enc: X @ e, "dense": lambda D=D: X @ D},
                               rounds=5)
        rows.append({"d": d, "k": k, "coding": enc.meta["coding"],
                     "bits_per_weight": enc.bits_per_weight, "rel_error": rel_err(W, D),
                     "rmatvec_ms": 1e3 * vec["lut"], "dense_rmatvec_ms": 1e3 * vec["dense"],
                     "rmatmul32_ms": 1e3 * mat["lut"], "dense_rmatmul32_ms": 1e3 * mat["dense"]})
    progress(len(configs), len(configs), "done")
    return rows


def trained_layer(hidden: int = 512, seed: int = 0, epochs: int = 6) -> np.ndarray:
    """The (hidden, hidden) middle layer of a 64-hidden-hidden-10 ReLU MLP trained with SGD
    and momentum to imitate a random teacher network (synthetic data, made here)."""
    rng = np.random.default_rng(seed)
    N, din, classes = 20000, 64, 10
    X = rng.standard_normal((N, din)).astype(np.float32)
    T1 = rng.standard_normal((din, 128)).astype(np.float32) / 8
    T2 = rng.standard_normal((128, classes)).astype(np.float32)
    y = np.argmax(np.tanh(X @ T1) @ T2, axis=1)
    sizes = [din, hidden, hidden, classes]
    Ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32)
          for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    vel = [np.zeros_like(w) for w in Ws]
    lr, mom, batch = 0.05, 0.9, 256
    for _ in range(epochs):
        order = rng.permutation(N)
        for s in range(0, N, batch):
            idx = order[s:s + batch]
            acts = [X[idx]]
            for w in Ws[:-1]:
                acts.append(np.maximum(acts[-1] @ w, 0))
            logits = acts[-1] @ Ws[-1]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(idx.size), y[idx]] -= 1
            grad = p / idx.size
            for li in range(len(Ws) - 1, -1, -1):
                gw = acts[li].T @ grad
                if li:
                    grad = (grad @ Ws[li].T) * (acts[li] > 0)
                vel[li] = mom * vel[li] - lr * gw
                Ws[li] += vel[li]
    return np.ascontiguousarray(Ws[1])


def rate_distortion(layers: dict[str, np.ndarray]) -> list[dict]:
    rows = []
    jobs = []
    for name in layers:
        jobs += [(name, "pq", d, k) for d in (4, 8, 16) for k in (16, 64, 256, 1024)]
        jobs += [(name, "kmeans", 0, k) for k in (2, 4, 8, 16, 32, 64)]
        jobs += [(name, f"prune {p}% + kmeans", p, k) for p in (50, 75, 90)
                 for k in (2, 4, 8, 16, 32)]
    for i, (name, method, a, k) in enumerate(jobs):
        progress(i, len(jobs), f"{name}: {method} {a} {k}")
        W = layers[name]
        if method == "pq":
            enc = qz.product_quantize(W, a, k)
            D, bpw, fmt = enc.decode(), enc.bits_per_weight, f"pq d={a}"
        else:
            P = W if method == "kmeans" else qz.prune(W, a).weights
            D = qz.kmeans(P, k).values
            enc = sc.encode(D)
            bpw, fmt = enc.bits_per_weight, enc.format
        rows.append({"layer": name, "method": method if method != "pq" else f"pq d={a}",
                     "k": k, "format": fmt, "bits_per_weight": bpw, "rel_error": rel_err(W, D)})
    progress(len(jobs), len(jobs), "done")
    return rows


def plot(rows: list[dict], path: str) -> None:
    plt = pyplot()

    names = list(dict.fromkeys(r["layer"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(7 * len(names), 5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        methods = list(dict.fromkeys(r["method"] for r in rows if r["layer"] == name))
        for method in methods:
            pts = sorted((r["bits_per_weight"], r["rel_error"]) for r in rows
                         if r["layer"] == name and r["method"] == method)
            style = "-o" if method.startswith("pq") else ("-s" if method == "kmeans" else "--^")
            ax.plot(*zip(*pts, strict=True), style, ms=4, lw=1.2, label=method)
        ax.axvline(1.0, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("bits per weight stored (codebooks included)")
        ax.set_ylabel("relative Frobenius error")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Product quantization vs scalar k-means, with and without pruning "
                 "(sparsecodec bench/pq.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-plot", action="store_true")
    args = ap.parse_args()
    if not args.skip_speed:
        rows = speed()
        print(f"{'d':>3}{'k':>7} {'coding':<8}{'bits/w':>8}{'rel.err':>9}{'x@W ms':>9}"
              f"{'dense':>8}{'ratio':>7}{'X@W ms':>9}{'dense':>8}{'ratio':>7}")
        for r in rows:
            print(f"{r['d']:>3}{r['k']:>7} {r['coding']:<8}{r['bits_per_weight']:>8.3f}"
                  f"{r['rel_error']:>9.4f}{r['rmatvec_ms']:>9.2f}{r['dense_rmatvec_ms']:>8.2f}"
                  f"{r['dense_rmatvec_ms'] / r['rmatvec_ms']:>6.2f}x{r['rmatmul32_ms']:>9.2f}"
                  f"{r['dense_rmatmul32_ms']:>8.2f}"
                  f"{r['dense_rmatmul32_ms'] / r['rmatmul32_ms']:>6.2f}x")
        print("ratio = dense time / LUT time (above 1: the LUT product is faster)")
    if not args.skip_plot:
        layers = {"Gaussian 1024 x 1024": (np.random.default_rng(2).standard_normal(
            (1024, 1024)) / 32).astype(np.float32), "trained MLP layer 512 x 512": trained_layer()}
        rows = rate_distortion(layers)
        write_csv(rows, args.out, "pq_rate_distortion.csv")
        plot(rows, os.path.join(args.out, "pq_rate_distortion.png"))
        for r in rows:
            print(f"{r['layer']:<28}{r['method']:<22}{r['k']:>6} {r['format']:<10}"
                  f"{r['bits_per_weight']:>8.3f}{r['rel_error']:>9.4f}")


if __name__ == "__main__":
    main()
