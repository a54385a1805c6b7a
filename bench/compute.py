"""Compressed-domain products on real-size layers, against numpy dense and scipy CSR.

    python bench/compute.py [--shapes 384x384,384x1536,1536x384,4096x4096] [--rounds 40]
                            [--busy | --no-busy] [--isolated] [--kinds ...] [--busy-kinds ...]
                            [--no-runtime] [--out docs/img] [--skip-plot]

For each layer (kinds: ``gaussian``, ``laplace``, ``scaled`` (per-row and per-column scale
structure), ``demo`` (the demo model's trained 256x256 layer, tiled); 4096x4096: gaussian
only), pruned to keep 10%, 50% or 100%, quantized to 16 or 256 values two ways:

- ``grid``: ``quantize.integer`` with a scale per output column (4 bits: 15 levels and 0;
  8 bits: 255 levels), values on an affine grid, as int4/int8 schemes make them;
- ``kmeans``: k-means with 16 or 256 levels (an arbitrary codebook),

every registered format encodes the matrix, and ``x @ W`` (one float32 vector) and ``X @ W``
(b = 32) are timed *interleaved*: each round calls every contender once, in turn, so that a
change in machine load hits them alike. The reference of each case is the better of numpy dense
(``x @ W`` on the float32 array) and scipy CSR (``x @ csr``). Reported: bytes, bits/weight,
best time, ratio to the reference, p95 / best over the rounds.

The whole run is repeated with two processes spinning on the cores (``--busy``, the default
does both) to show what an oversubscribed machine does to each kernel. It prints the worst
ratios against the goals in docs/performance.md, writes ``compute.csv`` and ``compute.png`` (with
``--isolated``: ``compute_isolated.*``; speed against
bits per weight per format, the dense and scipy lines drawn) into ``--out``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from figures import pyplot, write_csv

import sparsecodec as sc
from sparsecodec import quantize as qz
from sparsecodec.errors import EncodeError
from sparsecodec.formats.base import Matrix

HERE = Path(__file__).resolve().parent
KINDS = ("gaussian", "laplace", "scaled", "demo")
KEEPS = (0.1, 0.5, 1.0)
VALUES = (16, 256)
BATCH = 32
COMPRESSED = 10.0  # bits per weight: what "really compressed" means in the goals


def layer(kind: str, n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        W = rng.standard_normal((n, m))
    elif kind == "laplace":
        W = rng.laplace(size=(n, m))
    elif kind == "scaled":
        W = (rng.standard_normal((n, m)) * np.exp(0.5 * rng.standard_normal((n, 1)))
             * np.exp(0.5 * rng.standard_normal((1, m))))
    elif kind == "demo":
        with np.load(Path(sc.__file__).parent / "data" / "digits_mlp.npz") as f:
            base = f["fc2.weight"]
        W = np.tile(base, (-(-n // base.shape[0]), -(-m // base.shape[1])))[:n, :m]
    else:
        raise ValueError(kind)
    return (W / np.sqrt(n)).astype(np.float32)


def quantized(W: np.ndarray, keep: float, values: int, how: str) -> np.ndarray:
    P = qz.prune(W, 100 * (1 - keep)).weights if keep < 1 else W.copy()
    if how == "grid":
        return qz.integer(P, 4 if values == 16 else 8).values
    mask = P != 0
    q = qz.kmeans(P[mask], values)
    P[mask] = q.values
    return P


ISOLATED = False  # --isolated: time each contender in a block of its own instead


def timed(calls: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """Best and 95th-percentile seconds of each call, measured interleaved (each round calls
    every contender once, starting with a different one) or, with ``ISOLATED``, each in its
    own block of rounds: then no contender runs while another's threads still spin (OpenBLAS
    and OpenMP workers busy-wait for a while after returning, on the cores the next
    contender wants)."""
    names = list(calls)
    times: dict[str, list[float]] = {k: [] for k in names}
    for f in calls.values():  # warm (compile, caches, first-touch)
        f()
    if ISOLATED:
        for k in names:
            for _ in range(rounds):
                t = time.perf_counter()
                calls[k]()
                times[k].append(time.perf_counter() - t)
    for r in range(0 if ISOLATED else rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            t = time.perf_counter()
            calls[k]()
            times[k].append(time.perf_counter() - t)
    return {k: (min(v), float(np.percentile(v, 95))) for k, v in times.items()}


def spin() -> None:  # pragma: no cover - a busy competitor
    while True:
        pass


def run_case(W: np.ndarray, rounds: int, formats: list[str]) -> list[dict]:
    n, m = W.shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(np.float32)
    X = rng.standard_normal((BATCH, n)).astype(np.float32)
    S = sp.csr_matrix(W)
    M = Matrix(W)
    table = sc.sizes(M)
    encs = {}
    for f in formats:
        if f == "pq":
            continue  # lossy: no exact encoding of a given matrix
        if table.get(f, 0) > W.nbytes:
            # larger than the dense matrix, so not compression: cer pads a group for every
            # rank up to a column's largest, 0.7 GB (5.6 GB while encoding) for a 2048x2048
            # int8 layer with a scale per column, and the 4096x4096 one ran out of memory
            continue
        try:
            encs[f] = sc.encode(M, format=f)
        except EncodeError:  # e.g. sham_ans past 2^16 values in a context (int8 per column)
            continue
    vec = {"dense": lambda: x @ W, "scipy": lambda: x @ S}
    vec.update({f: (lambda e=e: x @ e) for f, e in encs.items()})
    bat = {"dense": lambda: X @ W, "scipy": lambda: X @ S}
    bat.update({f: (lambda e=e: X @ e) for f, e in encs.items()})
    tv = timed(vec, rounds)
    tb = timed(bat, max(5, rounds // 3))
    ref_v = min(tv["dense"][0], tv["scipy"][0])
    ref_b = min(tb["dense"][0], tb["scipy"][0])
    rows = []
    for f in ("dense", "scipy", *encs):
        nbytes = (W.nbytes if f == "dense" else
                  S.data.nbytes + S.indices.nbytes + S.indptr.nbytes if f == "scipy"
                  else encs[f].nbytes)
        rows.append({"format": f, "bytes": nbytes, "bits_per_weight": 8 * nbytes / W.size,
                     "vec_us": 1e6 * tv[f][0], "vec_ratio": tv[f][0] / ref_v,
                     "vec_p95_best": tv[f][1] / tv[f][0],
                     "batch_us": 1e6 * tb[f][0], "batch_ratio": tb[f][0] / ref_b,
                     "batch_p95_best": tb[f][1] / tb[f][0]})
    return rows


def summarize(rows: list[dict], load: str) -> None:
    cases = {}
    for r in rows:
        if r["load"] == load:
            cases.setdefault(r["case"], []).append(r)
    goals = {"fastest <=10 b/w, grid, x@W (<= 1.0)": ("grid", "vec_ratio"),
             "fastest <=10 b/w, kmeans, x@W (<= 2.0)": ("kmeans", "vec_ratio"),
             "fastest <=10 b/w, grid, X@W b=32 (<= 1.0)": ("grid", "batch_ratio"),
             "fastest <=10 b/w, kmeans, X@W b=32 (<= 2.0)": ("kmeans", "batch_ratio")}
    print(f"\n== {load} machine: {len(cases)} cases")
    for goal, (how, key) in goals.items():
        best = []
        for case, rs in cases.items():
            if rs[0]["quantizer"] != how:
                continue
            ok = [r for r in rs if r["format"] not in ("dense", "scipy")
                  and r["bits_per_weight"] <= COMPRESSED]
            b = min(ok, key=lambda r: r[key])
            best.append((b[key], case, b["format"]))
        ratios = np.array([b[0] for b in best])
        limit = float(goal.rsplit("<= ", 1)[1].rstrip(")"))
        worst = max(best)
        print(f"  {goal}: median {np.median(ratios):.2f}, worst {worst[0]:.2f} "
              f"({worst[1]}, {worst[2]}); met in {int((ratios <= limit).sum())} of "
              f"{len(ratios)}")
    small = []
    for case, rs in cases.items():
        enc = [r for r in rs if r["format"] not in ("dense", "scipy")]
        s = min(enc, key=lambda r: r["bytes"])
        small.append((s["vec_ratio"], case, s["format"]))
    ratios = np.array([s[0] for s in small])
    worst = max(small)
    print(f"  smallest encoding, x@W (<= 2.0): median {np.median(ratios):.2f}, worst "
          f"{worst[0]:.2f} ({worst[1]}, {worst[2]}); met in {int((ratios <= 2).sum())} of "
          f"{len(ratios)}")
    for key in ("vec_p95_best", "batch_p95_best"):
        fast = []
        for case, rs in cases.items():
            ok = [r for r in rs if r["format"] not in ("dense", "scipy")
                  and r["bits_per_weight"] <= COMPRESSED]
            b = min(ok, key=lambda r: r[key.split("_")[0] + "_ratio"])
            fast.append((b[key], case, b["format"]))
        v = np.array([f[0] for f in fast])
        worst = max(fast)
        print(f"  p95/best of the fastest, {key.split('_')[0]} (<= 3): median {np.median(v):.2f},"
              f" worst {worst[0]:.2f} ({worst[1]}, {worst[2]}); met in {int((v <= 3).sum())} "
              f"of {len(v)}")
    per_format = {}
    for r in rows:
        if r["load"] == load:
            per_format.setdefault(r["format"], []).append(r["vec_p95_best"])
    print("  p95/best of x@W per format (worst): " + ", ".join(
        f"{f} {max(v):.1f}" for f, v in per_format.items()))


def models(seed: int = 0) -> dict[str, tuple[list, dict, np.ndarray]]:
    """(layer list for ``runtime.build``, float32 weights by name, a batch of 256) of the demo
    MLP (its trained weights) and of a 2-conv + 2-fc CNN of MNIST size (He-initialised)."""
    with np.load(Path(sc.__file__).parent / "data" / "digits_mlp.npz") as f:
        mlp = {k: f[k].astype(np.float32) for k in f.files if k.startswith("fc")}
        xm = np.resize(f["x_test"].astype(np.float32), (256, f["x_test"].shape[1]))
    spec_mlp = [{"type": "linear", "weight": f"fc{i}.weight", "bias": f"fc{i}.bias",
                 "activation": "relu" if i < 3 else "linear"} for i in (1, 2, 3)]
    rng = np.random.default_rng(seed)

    def he(n, m):
        return (rng.standard_normal((n, m)) * np.sqrt(2 / n)).astype(np.float32)

    cnn = {"c1.weight": he(9, 16), "c1.bias": np.zeros(16, np.float32),
           "c2.weight": he(16 * 9, 32), "c2.bias": np.zeros(32, np.float32),
           "f1.weight": he(32 * 7 * 7, 128), "f1.bias": np.zeros(128, np.float32),
           "f2.weight": he(128, 10), "f2.bias": np.zeros(10, np.float32)}
    spec_cnn = [
        {"type": "conv2d", "weight": "c1.weight", "bias": "c1.bias", "kernel_size": 3,
         "padding": 1, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "weight": "c2.weight", "bias": "c2.bias", "kernel_size": 3,
         "padding": 1, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "weight": "f1.weight", "bias": "f1.bias", "activation": "relu"},
        {"type": "linear", "weight": "f2.weight", "bias": "f2.bias"}]
    xc = rng.random((256, 1, 28, 28)).astype(np.float32)
    return {"demo MLP": (spec_mlp, mlp, xm), "MNIST CNN": (spec_cnn, cnn, xc)}


def runtime(rounds: int) -> list[dict]:
    """Batch-256 inference of each model on encoded weights (int8 and int4 per column in
    ``grid``, and in the smallest format), against the same layers on the decoded weights as
    NumPy arrays; interleaved."""
    from sparsecodec.runtime import model as rm

    rows = []
    for name, (spec, weights, x) in models().items():
        for bits in (8, 4):
            q = {k: (qz.integer(v, bits).values if v.ndim == 2 else v)
                 for k, v in weights.items()}
            nets = {"numpy": rm.Sequential(rm.build(spec, {
                k: (sc.encode(v, format="dense") if v.ndim == 2 else v)
                for k, v in q.items()}).layers)}
            for layer in nets["numpy"].layers:  # the decoded arrays themselves, not encoded
                if hasattr(layer, "weight"):
                    layer.weight = layer.weight.decode()
            for fmt in ("grid", "auto"):
                enc = {k: (sc.encode(v, format=fmt) if v.ndim == 2 else v) for k, v in q.items()}
                nets[fmt] = rm.build(spec, enc)
            ref = nets["numpy"](x)
            for net in nets.values():
                np.testing.assert_allclose(net(x), ref, rtol=1e-5, atol=1e-4)
            t = timed({k: (lambda net=net, x=x: net(x)) for k, net in nets.items()}, rounds)
            for k in ("grid", "auto"):
                rows.append({"model": name, "bits": bits, "format": k,
                             "ms": 1e3 * t[k][0], "numpy_ms": 1e3 * t["numpy"][0],
                             "ratio": t[k][0] / t["numpy"][0],
                             "p95_best": t[k][1] / t[k][0]})
    return rows


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    shapes = sorted({r["shape"] for r in rows},
                    key=lambda s: int(s.split("x")[0]) * int(s.split("x")[1]))
    fig, axes = plt.subplots(1, len(shapes), figsize=(4.2 * len(shapes), 4), squeeze=False)
    for ax, shape in zip(axes[0], shapes, strict=True):
        sel = [r for r in rows if r["shape"] == shape and r["load"] == "quiet"
               and r["kind"] == "gaussian" and r["keep"] == 0.5]
        colors = plt.get_cmap("tab20").colors
        for c, f in enumerate(dict.fromkeys(r["format"] for r in sel)):
            pts = [(r["bits_per_weight"], r["vec_us"]) for r in sel if r["format"] == f]
            if f in ("dense", "scipy"):
                ax.axhline(np.median([p[1] for p in pts]), ls="--", lw=1,
                           color="k" if f == "dense" else "gray", label=f)
            else:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, label=f,
                           color=colors[(2 * c) % 20 + (c >= 10)])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([2, 4, 8, 16, 32], ["2", "4", "8", "16", "32"])
        ax.minorticks_off()
        ax.set_xlabel("bits per weight")
        ax.set_title(f"x @ W, {shape}, keep 50%")
    axes[0][0].set_ylabel("microseconds (best of the rounds)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    fig.savefig(path, dpi=110)


def replot(csv_path: str, png_path: str) -> None:
    """Draw the figure again from a written CSV."""
    import csv

    with open(csv_path) as f:
        rows = [{k: (float(v) if k in ("keep", "bits_per_weight", "vec_us") else v)
                 for k, v in r.items()} for r in csv.DictReader(f)]
    plot(rows, Path(png_path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="384x384,384x1536,1536x384,4096x4096")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--busy", action=argparse.BooleanOptionalAction, default=None,
                    help="only with (--busy) or only without (--no-busy) competing processes; "
                         "default both")
    ap.add_argument("--formats", default=",".join(sc.formats()))
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "img"))
    ap.add_argument("--skip-plot", action="store_true")
    ap.add_argument("--isolated", action="store_true",
                    help="time each contender in its own block, not interleaved")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--busy-kinds", default="gaussian,scaled",
                    help="layer kinds repeated with the busy competitors")
    ap.add_argument("--no-runtime", action="store_true", help="skip the model runs")
    args = ap.parse_args()
    global ISOLATED
    ISOLATED = args.isolated
    formats = args.formats.split(",")
    loads = ["quiet", "busy"] if args.busy is None else (["busy"] if args.busy else ["quiet"])
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    cases = []
    for n, m in shapes:
        for kind in (("gaussian",) if n * m > 4e6 else args.kinds.split(",")):
            for keep in KEEPS:
                for values in VALUES:
                    for how in ("grid", "kmeans"):
                        cases.append((n, m, kind, keep, values, how))
    mats = {}
    rows: list[dict] = []
    print(f"{len(cases)} cases x {len(formats)} formats, {args.rounds} interleaved rounds, "
          f"{os.cpu_count()} cores", flush=True)
    for load in loads:
        spinners = []
        if load == "busy":
            spinners = [mp.Process(target=spin, daemon=True) for _ in range(os.cpu_count() or 2)]
            for p in spinners:
                p.start()
        try:
            for i, (n, m, kind, keep, values, how) in enumerate(cases):
                if load == "busy" and kind not in args.busy_kinds.split(","):
                    continue
                key = (n, m, kind, keep, values, how)
                if key not in mats:
                    mats[key] = quantized(layer(kind, n, m, i), keep, values, how)
                case = f"{n}x{m} {kind} keep={keep:g} {values} {how}"
                t = time.time()
                for r in run_case(mats[key], args.rounds, formats):
                    rows.append({"load": load, "case": case, "shape": f"{n}x{m}", "kind": kind,
                                 "keep": keep, "values": values, "quantizer": how, **r})
                best = min((r for r in rows if r["case"] == case and r["load"] == load
                            and r["format"] not in ("dense", "scipy")
                            and r["bits_per_weight"] <= COMPRESSED),
                           key=lambda r: r["vec_ratio"])
                print(f"[{load} {i + 1}/{len(cases)}] {case}: fastest {best['format']} "
                      f"x@W {best['vec_ratio']:.2f}x ({best['vec_us']:.0f} us), "
                      f"{time.time() - t:.1f} s", flush=True)
                write_csv(rows, args.out, ("compute_isolated" if ISOLATED else "compute")
                          + ".csv")  # after every case: a long run that dies keeps its rows
        finally:
            for p in spinners:
                p.terminate()
        if load == "busy":
            mats.clear()
    out = Path(args.out)
    stem = "compute_isolated" if ISOLATED else "compute"
    path = write_csv(rows, str(out), f"{stem}.csv")
    print(f"wrote {path}")
    for load in loads:
        summarize(rows, load)
    if not args.skip_plot:
        plot(rows, out / f"{stem}.png")
        print(f"wrote {out / (stem + '.png')}")
    if args.no_runtime:
        return
    rt = runtime(max(5, args.rounds // 5))
    print(f"wrote {write_csv(rt, str(out), 'compute_runtime.csv')}")
    print("\n== runtime, batch of 256, vs the same layers on the decoded weights (<= 1.5)")
    for r in rt:
        print(f"  {r['model']:<10} int{r['bits']} {r['format']:<5} {r['ms']:8.2f} ms vs "
              f"{r['numpy_ms']:8.2f} ms: {r['ratio']:.2f}x (p95/best {r['p95_best']:.2f})")


if __name__ == "__main__":
    sys.exit(main())
