"""Occupancy psi (stored bits / (n m B)) of every format against its published bound, over
pruning levels and codebook sizes: the sHAM papers' comparison, reproduced on our bytes.

    python bench/occupancy.py [--out docs/img] [--shapes 4096x4096,4096x10,512x512]

Matrices: Gaussian float32 weights (seed 0), magnitude-pruned at p in {30, 50, 70, 90, 95, 99}%,
nonzeros k-means quantized to k in {2, 32, 128, 1024} values (fewer when fewer survive). The
actual psi is exact (``sc.sizes``, every byte); the bound is the published formula where there
is one (CSC, IM, HAM, sHAM as printed and corrected), our worst-case formula for CER/CSER.
Writes occupancy.csv and occupancy.png into --out and prints the table.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from figures import pyplot, write_csv

import sparsecodec as sc
from sparsecodec import bounds as bd
from sparsecodec import quantize as qz
from sparsecodec.formats.base import Matrix
from sparsecodec.progress import progress

PRUNING = (30, 50, 70, 90, 95, 99)
KS = (2, 32, 128, 1024)
FORMATS = ("csc", "index_map", "ham", "sham", "cer", "cser")
COLORS = {"csc": "tab:blue", "index_map": "tab:olive", "ham": "tab:green", "sham": "tab:red",
          "cer": "tab:purple", "cser": "tab:brown"}


def bound(fmt: str, n: int, m: int, M: Matrix) -> tuple[float, float | None]:
    """(bound, corrected bound or None) for one format."""
    q = M.nnz
    k_all, k_nz = M.all_distinct.k, M.nonzero_distinct.k
    if fmt == "csc":
        return bd.psi_csc(n, m, q), None
    if fmt == "index_map":
        return bd.psi_index_map(n, m, k_all), None
    if fmt == "ham":
        return bd.psi_ham(n, m, k_all), None
    if fmt == "sham":
        return bd.psi_sham(n, m, q, max(k_nz, 1)), bd.psi_sham_corrected(n, m, q, max(k_nz, 1))
    implicit = n * m - int(M.all_distinct.counts.max())
    fn = bd.psi_cer if fmt == "cer" else bd.psi_cser
    return fn(n, m, implicit, k_all), None


def sweep(shapes: list[tuple[int, int]]) -> list[dict]:
    rows = []
    steps = len(shapes) * len(PRUNING) * len(KS)
    done = 0
    for n, m in shapes:
        W = (np.random.default_rng(0).standard_normal((n, m)) / np.sqrt(n)).astype(np.float32)
        for p in PRUNING:
            P = qz.prune(W, p).weights
            for k in KS:
                progress(done, steps, f"{n}x{m} p={p}% k={k}")
                Q = qz.kmeans(P, k, n_iter=100).values
                M = Matrix(Q)
                sizes = sc.sizes(M)
                best = min(sizes, key=sizes.__getitem__)
                for fmt in FORMATS:
                    b, corrected = bound(fmt, n, m, M)
                    rows.append({"shape": f"{n}x{m}", "pruning": p, "density": M.nnz / Q.size,
                                 "k": M.nonzero_distinct.k, "k_asked": k, "format": fmt,
                                 "bytes": sizes[fmt], "psi": 8 * sizes[fmt] / (Q.size * 32),
                                 "psi_bound": b, "psi_corrected": corrected,
                                 "smallest": best})
                done += 1
    progress(steps, steps, "done")
    return rows


def plot(rows: list[dict], shapes: list[str], path: str) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(len(shapes), len(KS), figsize=(4.2 * len(KS), 3.6 * len(shapes)),
                             squeeze=False)
    for i, shape in enumerate(shapes):
        for j, k in enumerate(KS):
            ax = axes[i][j]
            for fmt in FORMATS:
                sel = sorted((r for r in rows if r["shape"] == shape and r["k_asked"] == k
                              and r["format"] == fmt), key=lambda r: r["pruning"])
                x = [r["pruning"] for r in sel]
                ax.plot(x, [r["psi"] for r in sel], "-o", color=COLORS[fmt], ms=3, lw=1.3,
                        label=fmt)
                ax.plot(x, [r["psi_bound"] for r in sel], "--", color=COLORS[fmt], lw=0.9)
                if fmt == "sham":
                    ax.plot(x, [r["psi_corrected"] for r in sel], ":", color=COLORS[fmt],
                            lw=1.2)
            ax.axhline(1.0, color="grey", lw=0.6)
            ax.set_yscale("log")
            ax.set_title(f"{shape}, k = {k}", fontsize=10)
            ax.grid(True, which="both", alpha=0.25)
            if i == len(shapes) - 1:
                ax.set_xlabel("pruned %")
            if j == 0:
                ax.set_ylabel("psi (stored / dense)")
    axes[0][-1].legend(fontsize=8, loc="lower left")
    fig.suptitle("Occupancy: actual (solid) vs published bound (dashed; sHAM corrected: "
                 "dotted; CER/CSER: our worst case)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--shapes", default="4096x4096,4096x10,512x512")
    args = ap.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    rows = sweep(shapes)
    write_csv(rows, args.out, "occupancy.csv")
    plot(rows, [f"{n}x{m}" for n, m in shapes], os.path.join(args.out, "occupancy.png"))
    print(f"{'shape':<10}{'p%':>4}{'k':>6} {'format':<10}{'psi':>9}{'bound':>9}{'corr.':>9}"
          f"  smallest")
    for r in rows:
        corr = f"{r['psi_corrected']:9.4f}" if r["psi_corrected"] is not None else f"{'':>9}"
        print(f"{r['shape']:<10}{r['pruning']:>4}{r['k']:>6} {r['format']:<10}{r['psi']:9.4f}"
              f"{r['psi_bound']:9.4f}{corr}  {r['smallest']}")


if __name__ == "__main__":
    main()
