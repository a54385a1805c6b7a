"""sparsecodec's entropy-coded sparse formats against NNCodec (MPEG NNR / DeepCABAC), in one
run: bytes, encode and decode time, and ``x @ W`` time.

    python bench/vs_nncodec.py [--n 2048] [--out docs/img] [--skip-plot]

Layers, all made here (nothing downloaded):
- ``gaussian`` and ``laplacian``: n x n i.i.d. weights.
- ``scaled``: n x n Gaussian weights times a log-normal scale per row and per column, the
  structure of trained transformer layers (rows and columns differ in scale).
- ``trained``: the 512 x 512 hidden layer of an MLP trained in numpy on a synthetic teacher task
  (``bench/pq.trained_layer``).
- ``digits.fc2``: the 256 x 256 hidden layer of the example model shipped with the package.

Each layer is magnitude-pruned to keep 10, 20 and 40% of its weights, then k-means quantized to
16, 32 and 256 levels.

Every size counts everything needed to decode, codebooks and tables included:
- NNCodec: the levels as an int32 tensor, with zero at level 0 and the others by rank of value
  (lossless, no quantization). The bytes are its bitstream plus the float32 codebook.
- rANS over all entries (``rans_h0``): a static interleaved rANS code of every entry, zeros
  included (``sparsecodec.coding.rans``), plus its frequency table and the codebook. This is
  what "a static ANS coder lands on H0" means in practice.
- ``sham``, ``sham_gap``, ``sham_ans``: the stored bytes.

The ``H0`` column is the zero-order entropy of the entries (H0 * n * m bits), a reference only:
context models can go below it.

Speed is measured single-shot for NNCodec (it is slow) and as the best of several runs for the
others. NNCodec's ``x @ W`` is its decode plus numpy's dense product. scipy CSR's matvec on the
same matrix is measured in the same run. A last table times batched products ``X @ W`` (b rows)
on the 2048 x 2048 ``scaled`` layer (keep 10%, 32 levels) against scipy CSR, interleaved
(``bench/conftest.interleaved_best``): decoding is paid once per batch, so the gap to scipy
closes as b grows.

NNCodec is a benchmark-only dependency with a heavy install; see ``docs/performance.md``. The
script runs without it and leaves its columns empty.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from conftest import interleaved_best
from figures import pyplot, write_csv
from nncodec_stub import load_nncodec

import sparsecodec as sc
from sparsecodec.coding import rans, rans_static
from sparsecodec.formats.base import Matrix
from sparsecodec.progress import progress
from sparsecodec.quantize import kmeans, prune

KEEP = (10, 20, 40)
LEVELS = (16, 32, 256)
FORMATS = ("sham", "sham_gap", "sham_ans")


def levels_of(Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(int32 levels with zero at 0 and the rest by rank of value, the sorted values, the
    index of zero among them)."""
    vals, inv = np.unique(Q, return_inverse=True)
    zero = int(np.searchsorted(vals, 0.0))
    return (inv.reshape(Q.shape) - zero).astype(np.int32), vals, zero


def nncodec_run(nnc, Q: np.ndarray, x: np.ndarray) -> dict:
    L, vals, zero = levels_of(Q)
    t = time.perf_counter()
    bs = nnc.compress({"w": L}, bitstream_path=None, return_bitstream=True, verbose=False)
    enc = time.perf_counter() - t
    back = nnc.decompress(bytearray(bs))["w"]
    assert np.array_equal(vals[back + zero], Q), "NNCodec did not round-trip"
    # decode and product timed as ours are (best_ms: warm, best of ROUNDS), so that neither
    # side is compared cold against the other's best
    dec = best_ms(lambda: vals[nnc.decompress(bytearray(bs))["w"] + zero]) / 1e3
    mv = best_ms(lambda: x @ vals[nnc.decompress(bytearray(bs))["w"] + zero])
    nonzero_levels = vals.size - (1 if vals[zero] == 0 else 0)
    return {"bytes": len(bs) + 4 * nonzero_levels, "encode_s": enc, "decode_s": dec,
            "rmatvec_ms": mv}


def rans_h0_bytes(Q: np.ndarray) -> int:
    """Bytes of a static 4-lane rANS code of every entry: words, block offsets, 16-bit
    frequencies and the float32 codebook."""
    d = Matrix(Q).all_distinct
    scale = 12 if d.k <= 1 << 11 else 16
    freq = rans.quantize_freqs(d.counts, scale)
    block = 1 << 16
    starts = np.append(np.arange(0, d.symbols.size, block), d.symbols.size).astype(np.int64)
    words, offsets = rans_static.encode_blocks(d.symbols, starts, freq, rans.cumulative(freq),
                                               scale)
    out = np.empty(d.symbols.size, np.int32)
    assert rans_static.decode_blocks(words, offsets, starts, rans_static.table(freq, scale),
                                     scale, out) == -1 and np.array_equal(out, d.symbols)
    return 2 * words.size + 8 * offsets.size + 2 * d.k + 4 * d.k


ROUNDS = 5  # timed runs after a warm-up, for every contender alike


def best_ms(fn, rounds: int = ROUNDS) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 1e3 * best


def ours(Q: np.ndarray, fmt: str, x: np.ndarray, timed: bool) -> dict:
    t = time.perf_counter()
    enc = sc.encode(Q, format=fmt)
    row = {"bytes": enc.nbytes, "encode_s": time.perf_counter() - t}
    back = np.ascontiguousarray(enc.decode())
    assert np.array_equal(back.view(np.uint32), Q.view(np.uint32)), f"{fmt} did not round-trip"
    if timed:
        row["decode_s"] = best_ms(enc.decode) / 1e3
        row["rmatvec_ms"] = best_ms(lambda: enc.rmatvec(x))
    if fmt == "sham_ans":
        row["model"] = f"{enc.order}:{_models(enc)}"
    return row


def _models(enc) -> str:
    from sparsecodec.formats.sham_ans import GAP_FEATURES, VALUE_FEATURES, model_name
    return (f"{model_name(enc.gap_model, GAP_FEATURES)}/"
            f"{model_name(enc.value_model, VALUE_FEATURES)}")


def make_layers(n: int) -> dict[str, np.ndarray]:
    from pq import trained_layer

    rng = np.random.default_rng(0)
    G = rng.standard_normal((n, n))
    scaled = G * np.exp(0.5 * rng.standard_normal(n))[:, None] * np.exp(
        0.3 * rng.standard_normal(n))[None, :]
    digits = np.load(os.path.join(os.path.dirname(sc.__file__), "data", "digits_mlp.npz"))
    return {"gaussian": G.astype(np.float32),
            "laplacian": rng.laplace(size=(n, n)).astype(np.float32),
            "scaled": scaled.astype(np.float32),
            "trained": trained_layer(),
            "digits.fc2": np.ascontiguousarray(digits["fc2.weight"], np.float32)}


def run(n: int) -> list[dict]:
    nnc = load_nncodec()
    if nnc is None:
        print("NNCodec is not installed: its columns stay empty (see docs/performance.md)",
              file=sys.stderr)
    layers = make_layers(n)
    jobs = [(name, keep, k) for name in layers for keep in KEEP for k in LEVELS]
    rows = []
    for i, (name, keep, k) in enumerate(jobs):
        progress(i, len(jobs), f"{name} keep {keep}% k={k}")
        W = layers[name]
        Q = kmeans(prune(W, 100 - keep).weights, k, seed=0).values
        x = np.random.default_rng(1).standard_normal(Q.shape[0])
        timed = Q.size >= 1 << 20  # speed only on the large layers
        row = {"layer": name, "shape": f"{Q.shape[0]}x{Q.shape[1]}", "keep": keep, "k": k,
               "h0_bytes": round(sc.bounds.entropy_h0(Q) * Q.size / 8),
               "rans_h0_bytes": rans_h0_bytes(Q)}
        if nnc is not None:
            for key, v in nncodec_run(nnc, Q, x).items():
                row[f"nncodec_{key}"] = v
        for fmt in FORMATS:
            for key, v in ours(Q, fmt, x, timed).items():
                row[f"{fmt}_{key}"] = v
        if timed:
            A = sp.csr_matrix(Q.T)  # x @ W = W^T x
            row["scipy_rmatvec_ms"] = best_ms(lambda A=A, x=x: A @ x, 9)
            Qd = Q.astype(np.float64)
            row["dense_rmatvec_ms"] = best_ms(lambda Qd=Qd, x=x: x @ Qd, 5)
        row["weights"] = Q.size
        rows.append(row)
    progress(len(jobs), len(jobs), "done")
    return rows


def batched(n: int, batches: tuple[int, ...] = (1, 8, 32, 128)) -> list[dict]:
    W = make_layers(n)["scaled"]
    Q = kmeans(prune(W, 90).weights, 32, seed=0).values
    encs = {f: sc.encode(Q, format=f) for f in ("sham_gap", "sham_ans")}
    A = sp.csr_matrix(Q.T.astype(np.float64))
    rows = []
    for b in batches:
        X = np.random.default_rng(b).standard_normal((b, Q.shape[0]))
        Xt = np.ascontiguousarray(X.T)
        x = Xt[:, 0].copy()
        fns = {"scipy": (lambda x=x: A @ x) if b == 1 else (lambda Xt=Xt: A @ Xt)}
        for f, e in encs.items():
            fns[f] = ((lambda e=e, x=x: e.rmatvec(x)) if b == 1
                      else (lambda e=e, X=X: e.rmatmul(X)))
        best = interleaved_best(fns, 15)
        rows.append({"b": b, **{f"{k}_ms": 1e3 * v for k, v in best.items()},
                     "order": encs["sham_ans"].order})
    return rows


def print_batched(rows: list[dict], n: int) -> None:
    print(f"\nX @ W on the scaled {n} x {n} layer, keep 10%, 32 levels (sham_ans order "
          f"{rows[0]['order']}); ms, and the ratio to scipy CSR\n")
    print("| b | scipy CSR | sham_gap | sham_ans |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        s = r["scipy_ms"]
        print(f"| {r['b']} | {s:.2f} | {r['sham_gap_ms']:.2f} ({r['sham_gap_ms'] / s:.2f}x) | "
              f"{r['sham_ans_ms']:.2f} ({r['sham_ans_ms'] / s:.2f}x) |")


def bits(row: dict, key: str) -> str:
    v = row.get(key)
    return f"{8 * v / row['weights']:.3f}" if v is not None else "-"


def print_tables(rows: list[dict]) -> None:
    print("\nbits per weight (everything stored); last column: sham_ans bytes / NNCodec bytes\n")
    print("| layer | keep | k | H0 | NNCodec | rANS (H0) | sham | sham_gap | sham_ans | "
          "sham_ans model | ans / NNCodec |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        ratio = (f"{r['sham_ans_bytes'] / r['nncodec_bytes']:.3f}"
                 if "nncodec_bytes" in r else "-")
        print(f"| {r['layer']} {r['shape']} | {r['keep']}% | {r['k']} | {bits(r, 'h0_bytes')} | "
              f"{bits(r, 'nncodec_bytes')} | {bits(r, 'rans_h0_bytes')} | "
              f"{bits(r, 'sham_bytes')} | {bits(r, 'sham_gap_bytes')} | "
              f"{bits(r, 'sham_ans_bytes')} | {r['sham_ans_model']} | {ratio} |")
    timed = [r for r in rows if "scipy_rmatvec_ms" in r]
    if not timed:
        return
    print("\nspeed on the large layers (2 threads for sparsecodec; NNCodec single-threaded, "
          "timed once)\n")
    print("| layer | keep | k | encode s: NNCodec / gap / ans | decode ms: NNCodec / gap / ans "
          "| decode speed-up of ans | x @ W ms: scipy / gap / ans / NNCodec+dense |")
    print("|---|---:|---:|---|---|---:|---|")
    for r in timed:
        nd = r.get("nncodec_decode_s")
        print(f"| {r['layer']} | {r['keep']}% | {r['k']} | "
              f"{_f(nd and r['nncodec_encode_s'])} / {r['sham_gap_encode_s']:.3f} / "
              f"{r['sham_ans_encode_s']:.3f} | {_f(nd and 1e3 * nd, 1)} / "
              f"{1e3 * r['sham_gap_decode_s']:.1f} / {1e3 * r['sham_ans_decode_s']:.1f} | "
              f"{_f(nd and nd / r['sham_ans_decode_s'], 0)}x | "
              f"{r['scipy_rmatvec_ms']:.2f} / {r['sham_gap_rmatvec_ms']:.2f} / "
              f"{r['sham_ans_rmatvec_ms']:.2f} / {_f(r.get('nncodec_rmatvec_ms'), 1)} |")


def _f(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def plot(rows: list[dict], path: str) -> None:
    plt = pyplot()
    names = list(dict.fromkeys(r["layer"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.6), sharey=True)
    series = [("rans_h0_bytes", "rANS over all entries (H0)", "tab:gray"),
              ("sham_gap_bytes", "sham_gap", "tab:blue"),
              ("sham_ans_bytes", "sham_ans", "tab:green")]
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        sub = [r for r in rows if r["layer"] == name and "nncodec_bytes" in r]
        xs = np.arange(len(sub))
        for j, (key, label, color) in enumerate(series):
            ax.bar(xs + (j - 1) * 0.27, [r[key] / r["nncodec_bytes"] for r in sub], 0.27,
                   label=label, color=color)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(xs, [f"{r['keep']}%/{r['k']}" for r in sub], rotation=90, fontsize=7)
        ax.set_title(f"{name} {sub[0]['shape']}" if sub else name, fontsize=9)
        ax.set_ylim(0.9, 1.25)
    np.atleast_1d(axes)[0].set_ylabel("bytes / NNCodec bytes")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Lossless size relative to NNCodec (below 1: smaller); keep% / levels "
                 "(sparsecodec bench/vs_nncodec.py)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2048, help="size of the synthetic n x n layers")
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--skip-plot", action="store_true")
    args = ap.parse_args()
    rows = run(args.n)
    print(f"wrote {write_csv(rows, args.out, 'vs_nncodec.csv')}", file=sys.stderr)
    print_tables(rows)
    print_batched(batched(args.n), args.n)
    if not args.skip_plot and any("nncodec_bytes" in r for r in rows):
        plot(rows, os.path.join(args.out, "vs_nncodec.png"))


if __name__ == "__main__":
    main()
