"""``sparsecodec demo``: the built-in example model, pruned, quantized, packed and run on its
compressed weights.

The model is an MLP (64-256-256-10) trained on scikit-learn's 8x8 digits by
``examples/train_digits.py``; its weights and the 360 held-out test digits ship in
``sparsecodec/data/digits_mlp.npz``, so the demo needs nothing else.
"""

from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import bounds as bd
from .api import sizes
from .errors import SparseCodecError
from .pack import pack
from .progress import progress
from .runtime import load_model
from .timing import FIRST_RUN, best_time, numba_threads
from .tune.examples import MLP_SPEC

LAYERS = ("fc1", "fc2", "fc3")
FINETUNE_PRUNE = 90  # the pruning level the demo fine-tunes and reports
SPEC = MLP_SPEC


def _data() -> dict[str, np.ndarray]:
    with resources.files("sparsecodec").joinpath("data/digits_mlp.npz").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def example() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The example model's tensors and its test split (pixels scaled to [0, 1], labels)."""
    data = _data()
    x = data.pop("x_test").astype(np.float64) / 16.0
    y = data.pop("y_test")
    return {k: v for k, v in data.items() if k.startswith("fc")}, x, y


def training_split() -> tuple[np.ndarray, np.ndarray]:
    """The 1,437 digits the example model was trained on (pixels in [0, 1], labels)."""
    data = _data()
    return data["x_train"].astype(np.float64) / 16.0, data["y_train"]


FINETUNE = {"epochs": 20, "lr": 1e-2}  # centroid fine-tuning in the demo (about a second)


def _finetuned(path: Path, tensors: dict[str, np.ndarray], x_train: np.ndarray,
               y_train: np.ndarray, teacher: np.ndarray) -> dict[str, np.ndarray]:
    """The tensors of the packed file ``path`` with their shared values fine-tuned on the
    training digits (the float model's logits as teacher)."""
    from .io import open_file
    from .tune.finetune import finetune_centroids

    with open_file(path) as f:
        held = {f"{n}.weight": f[f"{n}.weight"].decode() for n in LAYERS}
    q = {**tensors, **held}
    return finetune_centroids(SPEC, q, x_train, y_train, teacher=teacher, **FINETUNE).tensors


def dense_logits(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = x
    for i, name in enumerate(LAYERS):
        h = h @ t[f"{name}.weight"].astype(np.float64) + t[f"{name}.bias"]
        if i < len(LAYERS) - 1:
            h = np.maximum(h, 0)
    return h


def run(prune: float = 70, k: int = 32, levels: tuple[float, ...] = (0, 50, 70, 80, 90, 95),
        plot: str | None = "sparsecodec-demo.png", finetune: bool = True) -> dict[str, Any]:
    """Run the demo, print its report; returns the figures (for tests). ``finetune``: also
    fine-tune the shared values at each pruning level (NumPy, about a second each)."""
    tensors, x, y = example()
    x_train, y_train = training_split()
    teacher = dense_logits(tensors, x_train)
    acc_dense = float((dense_logits(tensors, x).argmax(1) == y).mean())
    raw = sum(a.nbytes for a in tensors.values())
    levels = tuple(sorted(set(levels) | {prune} | ({FINETUNE_PRUNE} if finetune else set())))
    sweep = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(levels):
            progress(i, len(levels), f"prune {p:g}% + k-means {k}, pack, run"
                     f"{', fine-tune' if finetune else ''}")
            path = Path(tmp) / f"p{p:g}.spc"
            rows = pack(tensors, path, prune=p or None, quantize=f"kmeans:{k}", model=SPEC)
            model = load_model(path)
            acc = float((model(x).argmax(1) == y).mean())
            point = {"prune": p, "accuracy": acc, "file_bytes": path.stat().st_size,
                     "rows": rows}
            if finetune:
                tuned = _finetuned(path, tensors, x_train, y_train, teacher)
                if p == FINETUNE_PRUNE:  # packed, and run on its encoded weights
                    out = Path(tmp) / "tuned.spc"
                    pack(tuned, out, model=SPEC)
                    logits = load_model(out)(x)
                    point["file_bytes_finetuned"] = out.stat().st_size
                else:
                    logits = dense_logits(tuned, x)
                point["accuracy_finetuned"] = float((logits.argmax(1) == y).mean())
            sweep.append(point)
        progress(len(levels), len(levels), "done")
        main = next(s for s in sweep if s["prune"] == prune)
        packed = {r.name: r for r in main["rows"]}
        # the matrices the main file holds, to compare every format on them
        from .io import open_file

        with open_file(Path(tmp) / f"p{prune:g}.spc") as f:
            held = {name: f[f"{name}.weight"].decode() for name in LAYERS}
        per_format: dict[str, int] = {}
        for W in held.values():
            for fmt, nb in sizes(W).items():
                per_format[fmt] = per_format.get(fmt, 0) + nb
        report = bd.report(held["fc2"], formats=["csc", "index_map", "ham", "sham", "sham_gap",
                                                  "sham_ans", "cer"])

    weights = sum(tensors[f"{n}.weight"].size for n in LAYERS)
    print(f"example: MLP 64-256-256-10 trained on the 8x8 digits; {weights:,} weights, "
          f"{raw:,} bytes as float32; {len(y)} held-out test digits")
    print(f"accuracy, dense float32 weights:                      {acc_dense:.4f}")
    print(f"accuracy on compressed weights ({prune:g}% pruned, {k} values): "
          f"{main['accuracy']:.4f}   (inference ran on the encoded matrices)")
    print(f"file: {main['file_bytes']:,} bytes ({raw / main['file_bytes']:.1f}x smaller), "
          f"{8 * sum(r.nbytes for r in main['rows'] if r.matrix) / weights:.3f} bits per "
          "weight in the matrices")
    print("\nlayer    shape     format     bytes   bits/w")
    for n in LAYERS:
        r = packed[f"{n}.weight"]
        print(f"{n:<8} {'x'.join(map(str, r.matrix)):<9} {r.format:<8}{r.nbytes:>9,}"
              f"{8 * r.nbytes / (r.matrix[0] * r.matrix[1]):>9.3f}")
    print("\nthe three matrices in each format (bytes of the matrices; pack takes, per layer, "
          "the format that adds the fewest bytes to the file, header entry included):")
    for fmt, nb in sorted(per_format.items(), key=lambda t: t[1]):
        print(f"  {fmt:<10}{nb:>10,} bytes  {8 * nb / weights:6.3f} bits/weight")
    ft = next((s for s in sweep if s["prune"] == FINETUNE_PRUNE and finetune), None)
    if ft is not None:
        _print_finetune(ft, k, len(y_train), acc_dense)
    print(f"\npruning sweep (k-means, {k} values):   pruned   accuracy"
          f"{'   fine-tuned' if finetune else ''}   file bytes")
    for s in sweep:
        tuned = f"   {s['accuracy_finetuned']:>10.4f}" if finetune else ""
        print(f"{'':>37}{s['prune']:>6g}%   {s['accuracy']:.4f}{tuned}   "
              f"{s['file_bytes']:>10,}")
    print(f"\nbounds for fc2 ({prune:g}% pruned):")
    print(report)
    if plot:
        written = _plot(sweep, acc_dense, raw, plot)
        print(f"\nplot: {written}")
    return {"accuracy_dense": acc_dense, "accuracy": main["accuracy"],
            "file_bytes": main["file_bytes"], "raw_bytes": raw, "sweep": sweep,
            "per_format": per_format}


def _print_finetune(ft: dict[str, Any], k: int, samples: int, acc_dense: float) -> None:
    print(f"\nfine-tuning the shared values ({FINETUNE_PRUNE:g}% pruned, {k} values; "
          f"{FINETUNE['epochs']} epochs of Adam on the {samples:,} training digits, masks and "
          "assignments fixed, the float model as teacher):")
    print(f"  before: accuracy {ft['accuracy']:.4f}, file {ft['file_bytes']:,} bytes")
    print(f"  after:  accuracy {ft['accuracy_finetuned']:.4f}, file "
          f"{ft['file_bytes_finetuned']:,} bytes   (dense float32: {acc_dense:.4f})")


def _plot(sweep: list[dict], acc_dense: float, raw: int, path: str) -> str:
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return "(matplotlib missing: no plot)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = [s["prune"] for s in sweep]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(p, [s["accuracy"] for s in sweep], "o-", color="tab:blue", label="accuracy")
    if "accuracy_finetuned" in sweep[0]:
        ax.plot(p, [s["accuracy_finetuned"] for s in sweep], "^-", color="tab:green",
                label="shared values fine-tuned")
    ax.legend(loc="lower left", fontsize=8)
    ax.axhline(acc_dense, color="tab:blue", ls=":", lw=1, label="dense accuracy")
    ax.set_xlabel("pruned % (then k-means, 32 values)")
    ax.set_ylabel("test accuracy", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(p, [s["file_bytes"] / 1024 for s in sweep], "s--", color="tab:red", label="file")
    ax2.set_ylabel(f"file KiB (dense {raw / 1024:.0f} KiB)", color="tab:red")
    ax.set_title("sparsecodec demo: digits MLP on compressed weights")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(Path(path).resolve())


def run_layer(n: int, density: float, levels: int, seed: int) -> int:
    """``demo --layer``: encode a realistic n x n pruned + quantized layer in every format and
    compare bytes, decode and x^T W against numpy and scipy."""
    import scipy.sparse as sp

    from . import api
    from .bounds import entropy_h0
    from .examples import pruned_quantized_layer
    from .formats.base import Matrix

    W = pruned_quantized_layer(n, n, density, levels, seed=seed)
    M = Matrix(W)
    h0 = entropy_h0(M)
    x = np.random.default_rng(seed + 1).standard_normal(n).astype(np.float32)
    print(f"layer: {n}x{n} float32, Gaussian, magnitude-pruned to {100 * density:g}% "
          f"nonzeros ({M.nnz:,}), nonzeros quantized to {levels} values")
    print(f"zero-order entropy H0 = {h0:.4f} bits per weight "
          f"(no zero-order code of the entries can go below it)\n", flush=True)
    print(FIRST_RUN, file=sys.stderr)

    names = [f for f in api.formats() if f != "pq"]  # pq is lossy-trained, not for this table
    rows = []
    for i, name in enumerate(names):
        progress(i, len(names), f"encoding and timing {name}")
        enc = api.encode(M, format=name)
        if not np.array_equal(enc.decode().view(np.uint32), W.view(np.uint32)):
            raise SparseCodecError(f"demo: {name} did not round-trip")  # never expected
        t_dec = best_time(enc.decode, 3)
        t_dot = best_time(lambda e=enc: e.rmatvec(x))
        rows.append((name, enc.nbytes, t_dec, t_dot))
    progress(len(names), len(names), "done")
    t_np = best_time(lambda: x @ W)
    csr = sp.csr_matrix(W)
    t_sp = best_time(lambda: x @ csr)

    raw = W.nbytes
    head = (f"{'format':<10} {'bytes':>11} {'bits/w':>7} {'vs f32':>7} {'vs H0':>6} "
            f"{'decode ms':>10} {'x^T W ms':>9}")
    print(head)
    print("-" * len(head))
    best = min(r[1] for r in rows)
    for name, nbytes, t_dec, t_dot in rows:
        bpw = 8 * nbytes / W.size
        mark = " <- smallest" if nbytes == best else ""
        print(f"{name:<10} {nbytes:>11,} {bpw:>7.3f} {raw / nbytes:>6.1f}x {bpw / h0:>6.2f} "
              f"{1e3 * t_dec:>10.2f} {1e3 * t_dot:>9.3f}{mark}")
    print(f"{'numpy':<10} {raw:>11,} {32:>7.3f} {1:>6.1f}x {32 / h0:>6.2f} {'':>10} "
          f"{1e3 * t_np:>9.3f}   (dense x @ W)")
    sp_bytes = csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes
    print(f"{'scipy CSR':<10} {sp_bytes:>11,} {8 * sp_bytes / W.size:>7.3f} "
          f"{raw / sp_bytes:>6.1f}x {8 * sp_bytes / W.size / h0:>6.2f} {'':>10} "
          f"{1e3 * t_sp:>9.3f}   (x @ csr_matrix)")
    print(f"\nauto picks: {api.encode(M).format}. Every format above decoded bit for bit; "
          "x^T W ran on the encoded form (decode and x^T W: best of several runs, "
          f"{numba_threads()} threads).")
    return 0
