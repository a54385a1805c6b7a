"""Real models on compressed weights (issue 21's figures).

    python bench/frameworks.py [--quick] [--busy] [--layers]

1. A MiniLM-sized BERT encoder (hidden 384, 6 layers, 12 heads, feed-forward 1536, vocabulary
   30,522): Hugging Face ``transformers.BertModel`` from a config when ``transformers`` is
   installed (random weights: no download), else ``sparsecodec.torch.examples.BertLike`` (the
   same module and tensor names). Every Linear compressed by ``sparsecodec.torch.compress``
   (50% pruned, 16 k-means values; and 16 values unpruned). Reported: the output's relative
   error against torch on the decoded weights, the bytes the compressed modules hold against
   the file's matrix bytes, the forward time against dense torch (batch 4 x 128 tokens;
   interleaved runs, medians; ``--busy``: again with a competing busy process per core), and
   the NumPy runtime (``runtime.describe.bert`` on the packed checkpoint, no torch).
   ``--layers`` instead: one ``CompressedLinear`` against ``nn.Linear`` on 384x384,
   384x1536, 1536x384 and 4096x4096 layers at 512 rows and at 1 row (the per-call cost).
2. Fine-tuning the shared values at 90% pruning with 16 and 32 values: the digits MLP in
   NumPy (``tune.finetune.finetune_centroids``) and in torch, and the digits CNN in torch
   (``sparsecodec.torch.finetune``), each without and with the float model as teacher, and
   with re-assignment; in torch also Deep Compression's order (``prune_retrain`` for half
   the epochs, then k-means, then the shared values for the other half, with the teacher;
   "before" is then after the retraining and k-means). Accuracy on the 360 held-out digits
   against the float model's.
   Everything trains on the 1,437 training digits only.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import sparsecodec as sc
import sparsecodec.torch as sct
from sparsecodec import quantize as qz
from sparsecodec.pack import pack, unpack
from sparsecodec.runtime import build, describe, load_model
from sparsecodec.tune.examples import MLP_SPEC, digits_cnn, digits_mlp
from sparsecodec.tune.finetune import finetune_centroids

CONFIG = {"vocab": 30522, "hidden": 384, "layers": 6, "heads": 12, "inner": 1536}


def bert(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "transformers":
        from transformers import BertConfig, BertModel

        cfg = BertConfig(vocab_size=CONFIG["vocab"], hidden_size=CONFIG["hidden"],
                         num_hidden_layers=CONFIG["layers"],
                         num_attention_heads=CONFIG["heads"],
                         intermediate_size=CONFIG["inner"], hidden_act="gelu",
                         attn_implementation="eager")
        return BertModel(cfg, add_pooling_layer=False).eval()
    from sparsecodec.torch.examples import BertLike

    return BertLike(**CONFIG).eval()


def hidden(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
    return getattr(out, "last_hidden_state", out)


def spin() -> None:  # a competing busy process
    while True:
        pass


def timed(fns: dict[str, object], reps: int) -> dict[str, float]:
    """Median seconds of each function, runs interleaved."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def timed_busy(fns: dict[str, object], reps: int) -> dict[str, float]:
    """:func:`timed` while a busy process spins on each of the 2 cores."""
    procs = [mp.Process(target=spin, daemon=True) for _ in range(2)]
    for pr in procs:
        pr.start()
    try:
        return timed(fns, reps)
    finally:
        for pr in procs:
            pr.terminate()


def bert_figures(kind: str, reps: int, busy: bool) -> list[dict]:
    torch.manual_seed(1)
    ids = torch.randint(0, CONFIG["vocab"], (4, 128))
    mask = torch.ones(4, 128)
    mask[3, 100:] = 0
    rows = []
    for label, prune in (("prune 50% + kmeans:16", 50), ("kmeans:16", None)):
        dense = bert(kind)
        model = sct.compress(bert(kind), prune=prune, quantize="kmeans:16")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bert.spc"
            size = sct.save_compressed(model, path)
            twin = bert(kind)
            twin.load_state_dict({k: torch.from_numpy(v) for k, v in unpack(path).items()},
                                 strict=False)
            ref = hidden(twin, ids, mask)
            t = time.perf_counter()
            out = hidden(model, ids, mask)
            first = time.perf_counter() - t
            rel = float((out - ref).abs().max() / ref.abs().max())
            f = sc.open(path)
            mods = sct.compressed_modules(model)
            matrix = sum(f[f"{n}.weight"].nbytes for n in mods)
            held = sct.weight_bytes(model)["encoded"]
            loaded = sct.load_compressed(bert(kind), path)
            same = bool(torch.equal(hidden(loaded, ids, mask), out))
            # the NumPy runtime on the same weights, from a packed checkpoint
            sd = {k: v.numpy() for k, v in twin.state_dict().items() if "position_ids" not in k}
            rpath = Path(tmp) / "runtime.spc"
            pack(sd, rpath, layout="torch", model=describe.bert(CONFIG["layers"],
                                                                CONFIG["heads"]),
                 prune=prune, quantize="kmeans:16", layers=r"encoder\..*\.weight$")
            graph = load_model(rpath)
            feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                    "token_type_ids": np.zeros((4, 128), np.int64)}
            rt = graph(**feed)
            rt_rel = float(np.abs(rt - ref.numpy()).max() / np.abs(ref.numpy()).max())
            fns = {"dense torch": lambda d=dense: hidden(d, ids, mask),
                   "compressed torch": lambda m=model: hidden(m, ids, mask),
                   "runtime (numpy)": lambda g=graph, f=feed: g(**f)}
            quiet = timed(fns, reps)
            loaded_busy = timed_busy(fns, max(3, reps // 2)) if busy else None
        row = {"setting": label, "model": kind, "file_bytes": size, "matrix_bytes": matrix,
               "held_bytes": held, "held_ratio": held / matrix, "rel_error": rel,
               "runtime_rel_error": rt_rel, "load_equal": same, "first_call_s": first,
               "times_s": quiet, "busy_times_s": loaded_busy,
               "dense_weight_bytes": sum(p.numel() * 4 for n, p in dense.named_parameters()
                                         if "encoder" in n and n.endswith("weight")
                                         and p.dim() == 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


SHAPES = ((384, 384), (384, 1536), (1536, 384), (4096, 4096))


def layer_figures(reps: int, busy: bool) -> list[dict]:
    """``CompressedLinear`` against ``nn.Linear`` on one layer of each shape (inputs x
    outputs; 50% pruned, 16 values), at 512 rows (4 x 128 tokens) and at 1 row (the per-call
    cost), interleaved; with ``busy`` again with a busy process per core."""
    rows = []
    for n, m in SHAPES:
        torch.manual_seed(0)
        dense = nn.Linear(n, m).eval()
        comp = sct.compress(nn.Sequential(copy.deepcopy(dense)), prune=50,
                            quantize="kmeans:16")[0]
        dense.weight.data = torch.from_numpy(comp.encoded.decode().T.copy())  # same weights
        for batch in (512, 1):
            x = torch.randn(batch, n)
            with torch.no_grad():
                err = float((comp(x) - dense(x)).abs().max() / dense(x).abs().max())
            fns = {"nn.Linear": lambda d=dense, x=x: hidden_plain(d, x),
                   "CompressedLinear": lambda c=comp, x=x: hidden_plain(c, x)}
            fns["nn.Linear"]()
            fns["CompressedLinear"]()
            quiet = timed(fns, reps if n < 4096 else max(3, reps // 3))
            loaded = timed_busy(fns, max(3, reps // 3)) if busy else None
            row = {"shape": [n, m], "rows": batch, "format": comp.encoded.format,
                   "rel_error": err, "times_s": quiet, "busy_times_s": loaded}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def hidden_plain(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


def torch_mlp(tensors: dict) -> nn.Module:
    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    for i, name in zip((0, 2, 4), ("fc1", "fc2", "fc3"), strict=True):
        net[i].weight.data = torch.from_numpy(tensors[f"{name}.weight"].T.copy())
        net[i].bias.data = torch.from_numpy(tensors[f"{name}.bias"].copy())
    return net.eval()


def torch_cnn(tensors: dict) -> nn.Module:
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 10))
    names = {0: "conv1", 2: "conv2", 6: "fc1", 8: "fc2"}
    for i, name in names.items():
        net[i].weight.data = torch.from_numpy(tensors[f"{name}.weight"].copy())
        net[i].bias.data = torch.from_numpy(tensors[f"{name}.bias"].copy())
    return net.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x).float()).argmax(1).numpy() == y).mean())


def finetune_figures(epochs: int) -> list[dict]:
    rows = []
    loss = nn.functional.cross_entropy
    for ex, make in ((digits_mlp(), torch_mlp), (digits_cnn(), torch_cnn)):
        teacher = make(ex.tensors)
        float_acc = accuracy(teacher, ex.x, ex.y)
        xt = torch.from_numpy(ex.x_train).float()
        yt = torch.from_numpy(ex.y_train)
        g = torch.Generator().manual_seed(0)
        for k in (16, 32):
            for variant in ("fixed", "teacher", "teacher + reassign", "retrained, teacher"):
                torch.manual_seed(0)
                order = torch.randperm(len(yt), generator=g)
                data = [(xt[order[i:i + 32]], yt[order[i:i + 32]])
                        for i in range(0, len(yt), 32)]
                t = time.perf_counter()
                if variant.startswith("retrained"):
                    # Deep Compression: prune, retrain the survivors, then share and tune
                    model = make(ex.tensors)
                    sct.prune_retrain(model, 90, loss, data, epochs=epochs // 2, lr=1e-3,
                                      teacher=teacher)
                    sct.compress(model, quantize=f"kmeans:{k}")
                    before = accuracy(model, ex.x, ex.y)
                    sct.finetune(model, loss, data, epochs=epochs // 2, lr=1e-3,
                                 teacher=teacher)
                else:
                    model = sct.compress(make(ex.tensors), prune=90, quantize=f"kmeans:{k}")
                    before = accuracy(model, ex.x, ex.y)
                    sct.finetune(model, loss, data, epochs=epochs, lr=1e-2,
                                 teacher=None if variant == "fixed" else teacher,
                                 reassign=variant.endswith("reassign"))
                secs = time.perf_counter() - t
                after = accuracy(model, ex.x, ex.y)
                row = {"model": ex.name, "framework": "torch", "k": k, "variant": variant,
                       "float": float_acc, "before": before, "after": after,
                       "within_1_point": after >= float_acc - 0.01, "seconds": secs}
                rows.append(row)
                print(json.dumps(row), flush=True)
        if ex.layout != "as-is":
            continue
        logits = build(MLP_SPEC, ex.tensors, dense=True)(ex.x_train)
        for k in (16, 32):
            q = dict(ex.tensors)
            for n in ("fc1.weight", "fc2.weight", "fc3.weight"):
                W = qz.prune(q[n], 90).weights
                m = W != 0
                W[m] = qz.kmeans(W[m], k).values
                q[n] = W
            before = float((build(MLP_SPEC, q, dense=True)(ex.x).argmax(1) == ex.y).mean())
            for variant in ("fixed", "teacher", "teacher + reassign"):
                t = time.perf_counter()
                r = finetune_centroids(MLP_SPEC, q, ex.x_train, ex.y_train, epochs=epochs,
                                       lr=1e-2, teacher=None if variant == "fixed" else logits,
                                       reassign=variant.endswith("reassign"))
                secs = time.perf_counter() - t
                after = float((build(MLP_SPEC, r.tensors, dense=True)(ex.x).argmax(1) == ex.y
                               ).mean())
                row = {"model": ex.name, "framework": "numpy", "k": k, "variant": variant,
                       "float": float_acc, "before": before, "after": after,
                       "within_1_point": after >= float_acc - 0.01, "seconds": secs}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def seed_figures(epochs: int, seeds: int = 5) -> list[dict]:
    """The CNN in Deep Compression's order over ``seeds`` data orders and torch seeds: how
    often it ends within 1 point of the float model, not one lucky run."""
    ex = digits_cnn()
    teacher = torch_cnn(ex.tensors)
    float_acc = accuracy(teacher, ex.x, ex.y)
    xt = torch.from_numpy(ex.x_train).float()
    yt = torch.from_numpy(ex.y_train)
    loss = nn.functional.cross_entropy
    rows = []
    for k in (16, 32):
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)
            order = torch.randperm(len(yt), generator=g)
            data = [(xt[order[i:i + 32]], yt[order[i:i + 32]]) for i in range(0, len(yt), 32)]
            model = torch_cnn(ex.tensors)
            sct.prune_retrain(model, 90, loss, data, epochs=epochs // 2, lr=1e-3,
                              teacher=teacher)
            sct.compress(model, quantize=f"kmeans:{k}")
            sct.finetune(model, loss, data, epochs=epochs // 2, lr=1e-3, teacher=teacher)
            after = accuracy(model, ex.x, ex.y)
            row = {"model": ex.name, "k": k, "seed": seed, "float": float_acc, "after": after,
                   "within_1_point": after >= float_acc - 0.01}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--busy", action="store_true", help="also time with busy cores")
    ap.add_argument("--skip-bert", action="store_true")
    ap.add_argument("--skip-finetune", action="store_true")
    ap.add_argument("--layers", action="store_true", help="only the per-layer timings")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    try:
        import transformers  # noqa: F401

        kind = "transformers"
    except ImportError:
        kind = "bertlike"
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, BERT from {kind}", flush=True)
    if args.layers:
        rows = layer_figures(5 if args.quick else 15, args.busy)
        for r in rows:
            t, b = r["times_s"], r["busy_times_s"]
            line = (f"{r['shape'][0]}x{r['shape'][1]} ({r['format']}), {r['rows']} rows: "
                    f"nn.Linear {1e3 * t['nn.Linear']:.3f} ms, CompressedLinear "
                    f"{1e3 * t['CompressedLinear']:.3f} ms, ratio "
                    f"{t['CompressedLinear'] / t['nn.Linear']:.2f}")
            if b:
                line += (f"; busy: ratio {b['CompressedLinear'] / b['nn.Linear']:.2f} "
                         f"({1e3 * b['CompressedLinear']:.3f} ms)")
            print(line)
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=1))
        return 0
    out = {"finetune": [] if args.skip_finetune else finetune_figures(args.epochs),
           "seeds": [] if args.skip_finetune else seed_figures(args.epochs)}
    if not args.skip_bert:
        out["bert"] = bert_figures(kind, 3 if args.quick else 9, args.busy)
    ft = out["finetune"]
    if ft:
        print(f"\nfine-tuning within 1 point of the float model: "
              f"{sum(r['within_1_point'] for r in ft)} of {len(ft)} runs")
    for r in ft:
        print(f"  {r['model']:<11} {r['framework']:<6} k={r['k']:<3} {r['variant']:<20} "
              f"float {r['float']:.4f}  before {r['before']:.4f}  after {r['after']:.4f}  "
              f"({r['seconds']:.1f} s)")
    for k in (16, 32):
        runs = [r for r in out["seeds"] if r["k"] == k]
        if runs:
            print(f"  CNN, Deep Compression's order, {k} values, {len(runs)} seeds: "
                  + ", ".join(f"{r['after']:.4f}" for r in runs) + "; within 1 point in "
                  f"{sum(r['within_1_point'] for r in runs)} of {len(runs)}")
    for r in out.get("bert", []):
        t = r["times_s"]
        print(f"\nBERT ({r['model']}), {r['setting']}: rel. error {r['rel_error']:.2e} "
              f"(runtime {r['runtime_rel_error']:.2e}); held {r['held_bytes']:,} B = "
              f"{r['held_ratio']:.3f} x the file's matrix bytes {r['matrix_bytes']:,} "
              f"(dense {r['dense_weight_bytes']:,}); file {r['file_bytes']:,} B")
        print("  forward 4 x 128 tokens: " + ", ".join(
            f"{k} {1e3 * v:.0f} ms" for k, v in t.items()) +
            f"; compressed / dense {t['compressed torch'] / t['dense torch']:.2f}")
        if r["busy_times_s"]:
            b = r["busy_times_s"]
            print("  busy cores: " + ", ".join(f"{k} {1e3 * v:.0f} ms" for k, v in b.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
