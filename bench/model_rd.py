"""Whole-model tuning (``sparsecodec.tune``) on the two example models: the file it writes
within 0.5 accuracy points of the float model, against the best uniform setting and against
NNCodec's whole-model bitstream; calibration-aware against data-free quantization; Bin &
Quant.

    python bench/model_rd.py [--nncodec-python PATH] [--out docs/img] [--max-drop 0.5]

Models (shipped with the package, nothing downloaded): the demo's digits MLP (64-256-256-10)
and a digits CNN (2 conv + 2 fc, ``examples/train_digits_cnn.py``). The score is the accuracy
in points on the 360 held-out digits; every method below chooses its setting on those
digits (the uniform grid's best, NNCodec's qp, the allocation), so they stand on the same
footing. A two-fold check then tunes on one half of the digits and scores the other.

Every size is a whole file: ours the ``.spc`` container (every tensor; biases stored as
float32 arrays; header included), NNCodec's its bitstream of every tensor (it quantizes the
biases too).

- **allocated**: ``tune.allocate(max_drop=...)`` on the default menu (prune x k-means
  levels, relative-error targets through ``sc.compress``, low rank);
- **uniform**: one (prune, k-means levels) setting for every layer, the smallest file of
  the grid within the drop;
- **calibrated**: the same allocation with GPTQ/SparseGPT candidates (levels refitted to the
  output error), calibrated on 256 *training* digits;
- **NNCodec**: 2.1.3, dependent quantization on, one qp for the whole model swept over
  -40..-4; the smallest bitstream within the drop;
- **Bin & Quant**: the paper's procedure (midpoint centres and splits, tol 0.2 points) and
  our variant (mean centres, median splits).

Calibration-aware against data-free: for each (prune, levels) of a grid applied to every
layer, the layers quantized data-free, or calibrated in order (GPTQ's sequential procedure:
each layer on the inputs the quantized layers before it give it,
``tune.capture.quantize_sequentially``); per layer the output error
``||X (W - Q)|| / ||X W||`` with X the layer's float-model inputs on the *test* digits (not
the calibration ones), the file bytes, and the score of the whole model.

Writes ``model_rd.csv`` and ``model_rd.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
QPS = range(-40, -3)


def nncodec_child(inp: str, out: str) -> None:
    """(In NNCodec's environment.) The whole model of ``inp`` at every qp of ``QPS``:
    bitstream bytes to ``out`` (JSON), decoded tensors to ``out`` + ``.npz``."""
    sys.path.insert(0, str(HERE))
    from nncodec_stub import load_nncodec

    nnc = load_nncodec()
    with np.load(inp) as d:
        t = {k: d[k] for k in d.files}
    sizes, arrays = {}, {}
    for qp in QPS:
        bs = nnc.compress(t, bitstream_path=None, return_bitstream=True, verbose=False,
                          qp=qp, use_dq=True)
        sizes[qp] = len(bs)
        for k, v in nnc.decompress(bytearray(bs)).items():
            arrays[f"{qp}|{k}"] = np.asarray(v, t[k].dtype).reshape(t[k].shape)
    Path(out).write_text(json.dumps(sizes))
    np.savez(out + ".npz", **arrays)


def nncodec_sweep(python: str, tensors: dict[str, np.ndarray]) -> list[tuple[int, int, dict]]:
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / "in.npz", **tensors)
        subprocess.run([python, __file__, "--nncodec-child", str(Path(d) / "in.npz"),
                        str(Path(d) / "out.json")], check=True)
        sizes = json.loads((Path(d) / "out.json").read_text())
        with np.load(Path(d) / "out.json.npz") as z:
            arrays = {k: z[k] for k in z.files}
    out = []
    for qp, size in sizes.items():
        out.append((int(qp), int(size), {k.split("|", 1)[1]: v for k, v in arrays.items()
                                         if k.split("|", 1)[0] == qp}))
    return out


def file_bytes(ex, plan) -> int:
    from sparsecodec.pack import pack

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.spc"
        pack(ex.tensors, path, plan=plan, layout=ex.layout, model=ex.spec)
        return path.stat().st_size


def run_model(ex, max_drop: float, nncodec: str | None) -> dict:
    from sparsecodec.runtime.model import weight_names
    from sparsecodec.tune import allocate, bin_and_quant, sensitivity, uniform_best
    from sparsecodec.tune.allocate import Setting, realize
    from sparsecodec.tune.calibrated import output_error
    from sparsecodec.tune.capture import layer_hessians, quantize_sequentially
    from sparsecodec.tune.examples import accuracy, matrices
    from sparsecodec.tune.model import score_curve

    names = weight_names(ex.spec)
    ev = accuracy(ex.spec, ex.x, ex.y, ex.layout)
    mats = matrices(ex.tensors, ex.spec, ex.layout)
    H_cal = layer_hessians(ex.spec, mats, ex.x_calib)
    H_test = layer_hessians(ex.spec, mats, ex.x)
    res: dict = {"model": ex.name, "weights": sum(mats[n].size for n in names)}

    t0 = time.perf_counter()
    sens = sensitivity(ex.tensors, ev, layers=names, layout=ex.layout)
    alloc = allocate(ex.tensors, sens=sens, max_drop=max_drop)
    res["alloc_time"] = time.perf_counter() - t0
    res["reference"] = alloc.reference
    res["allocated"] = {"bytes": file_bytes(ex, alloc), "score": alloc.score,
                        "payload": sum(c.stored.nbytes for c in alloc.choices.values()),
                        "others": sum(a.nbytes for n, a in ex.tensors.items()
                                      if n not in names),
                        "evaluations": alloc.evaluations,
                        "layers": [(n, c.setting.label, c.stored.format, c.nbytes)
                                   for n, c in alloc.choices.items()]}
    res["curve"] = [{"bytes": file_bytes(ex, p["allocation"]), "score": p["score"]}
                    for p in score_curve(sens, alloc)]
    u = uniform_best(sens, max_drop)
    if u is not None:
        s, _, score = u
        plan = {layer.name: next(c for c in sens.candidates[layer.name] if c.setting == s)
                .stored for layer in sens.layers}
        res["uniform"] = {"bytes": file_bytes(ex, plan), "score": score, "setting": s.label}

    t0 = time.perf_counter()
    sens_c = sensitivity(ex.tensors, ev, layers=names, layout=ex.layout, hessians=H_cal)
    alloc_c = allocate(ex.tensors, sens=sens_c, max_drop=max_drop)
    res["calib_time"] = time.perf_counter() - t0
    res["calibrated"] = {"bytes": file_bytes(ex, alloc_c), "score": alloc_c.score,
                         "evaluations": alloc_c.evaluations,
                         "layers": [(n, c.setting.label, c.stored.format,
                                     c.nbytes) for n, c in alloc_c.choices.items()]}

    # calibration-aware against data-free, setting by setting: the calibrated layers are
    # quantized in order, each on the inputs the quantized layers before it give it
    grid = [Setting(p, k) for p in (0.0, 50.0, 70.0, 80.0, 90.0) for k in (4, 8, 16)]
    layers = {layer.name: layer for layer in sens.layers}
    rows = []
    for s in grid:
        both = {}
        free = {n: realize(layers[n].matrix, s) for n in names}
        cal = quantize_sequentially(ex.spec, mats, ex.x_calib,
                                    lambda n, W, H, s=s: realize(W, s, H).matrix)
        for kind in ("data-free", "calibrated"):
            plan, tensors, errs = {}, {}, {}
            for n in names:
                Q = free[n].matrix if kind == "data-free" else cal[n]
                errs[n] = output_error(mats[n], Q, H_test[n])
                plan[n] = free[n].stored if kind == "data-free" else \
                    realize(np.asarray(Q, mats[n].dtype), Setting(0.0, None)).stored
                tensors[n] = layers[n].tensor(Q)
            qmats = {**mats, **{n: np.asarray(t) for n, t in
                                matrices(tensors, ex.spec, ex.layout).items() if n in names}}
            both[kind] = {"bytes": file_bytes(ex, plan), "score": ev({**ex.tensors, **tensors}),
                          "errors": errs, "model_errors": model_errors(ex, mats, qmats, names)}
        rows.append({"setting": s.label, **both})
    res["calibration"] = rows

    for variant, kw in (("paper", {}), ("variant", {"center": "mean", "split": "median"})):
        bq = bin_and_quant(ex.tensors, ev, layers=names, layout=ex.layout, **kw)
        plan = {}
        for layer in bq.layers:
            plan[layer.name] = realize(layer.values, Setting(0.0, None)).stored
        res[f"binquant_{variant}"] = {
            "bytes": file_bytes(ex, plan), "score": bq.score, "evaluations": bq.evaluations,
            "bits_per_weight": bq.bits_per_weight,
            "bins": {layer.name: len(layer.edges) - 1 for layer in bq.layers},
            "within_tol": [bool(bq.reference - layer.score <= 0.2) for layer in bq.layers]}

    res["twofold"] = twofold(ex, names, max_drop)
    if nncodec:
        pts = []
        for qp, size, back in nncodec_sweep(nncodec, ex.tensors):
            pts.append({"qp": qp, "bytes": size, "score": ev({**ex.tensors, **back})})
        res["nncodec_points"] = pts
        ok = [p for p in pts if alloc.reference - p["score"] <= max_drop + 1e-9]
        if ok:
            res["nncodec"] = min(ok, key=lambda p: p["bytes"])
    return res


def model_errors(ex, mats: dict, qmats: dict, names: list[str]) -> dict[str, float]:
    """Per weight layer, the relative error of its outputs in the quantized model against the
    float model's, on the test digits: ``||X_q Q - X_f W|| / ||X_f W||`` (every error made
    before the layer included)."""
    from sparsecodec.tune.capture import layer_inputs

    xf = dict(layer_inputs(ex.spec, mats, ex.x))
    xq = dict(layer_inputs(ex.spec, qmats, ex.x))
    return {n: float(np.linalg.norm(xq[n] @ qmats[n].astype(np.float64)
                                    - xf[n] @ mats[n].astype(np.float64))
                     / np.linalg.norm(xf[n] @ mats[n].astype(np.float64))) for n in names}


def twofold(ex, names: list[str], max_drop: float) -> list[dict]:
    """Tune on one half of the test digits, score the other half (both ways), with the
    greedy descent of ``allocate`` (the default) and without it (``refine=0``)."""
    from sparsecodec.tune import allocate, sensitivity
    from sparsecodec.tune.examples import accuracy

    half = np.arange(len(ex.y)) % 2 == 0
    out = []
    for tune_on, score_on in ((half, ~half), (~half, half)):
        ev_t = accuracy(ex.spec, ex.x[tune_on], ex.y[tune_on], ex.layout)
        ev_s = accuracy(ex.spec, ex.x[score_on], ex.y[score_on], ex.layout)
        sens = sensitivity(ex.tensors, ev_t, layers=names, layout=ex.layout)
        for refine in (24, 0):
            a = allocate(ex.tensors, sens=sens, max_drop=max_drop, refine=refine)
            out.append({"refine": refine, "tuned_drop": a.drop,
                        "unseen_drop": ev_s(ex.tensors) - ev_s(a.tensors),
                        "bytes": a.layer_bytes})
    return out


def report(res: dict, max_drop: float) -> list[dict]:
    ref = res["reference"]
    print(f"\n## {res['model']}: {res['weights']:,} weights, float accuracy {ref:.2f}")
    print(f"{'method':<26}{'file bytes':>11}{'accuracy':>10}{'drop':>7}{'evals':>7}  setting")
    rows = []
    for key, label in (("allocated", "allocated (data-free)"),
                       ("calibrated", "allocated (calibrated)"), ("uniform", "uniform best"),
                       ("nncodec", "NNCodec best qp"), ("binquant_paper", "Bin & Quant (paper)"),
                       ("binquant_variant", "Bin & Quant (mean/median)")):
        r = res.get(key)
        if r is None:
            print(f"{label:<26}{'-':>11}  (none within {max_drop} points)")
            continue
        what = r.get("setting") or (f"qp {r['qp']}" if "qp" in r else "")
        if "bins" in r:
            what = f"bins {r['bins']}, {r['bits_per_weight']:.2f} bits/weight, within tol " \
                   f"per layer {r['within_tol']}"
        print(f"{label:<26}{r['bytes']:>11,}{r['score']:>10.2f}{ref - r['score']:>7.2f}"
              f"{r.get('evaluations', ''):>7}  {what}")
        rows.append({"model": res["model"], "method": key, "bytes": r["bytes"],
                     "score": round(r["score"], 3), "drop": round(ref - r["score"], 3)})
    for key in ("allocated", "calibrated"):
        print(f"  {key}: " + "; ".join(f"{n} {s} ({f}, {b:,} B)"
                                       for n, s, f, b in res[key]["layers"]))
    a = res["allocated"]["bytes"]
    if "uniform" in res:
        print(f"allocated / uniform: {a / res['uniform']['bytes']:.3f} "
              f"(goal <= 0.70); calibrated / uniform: "
              f"{res['calibrated']['bytes'] / res['uniform']['bytes']:.3f}")
    if "nncodec" in res:
        print(f"allocated / NNCodec: {a / res['nncodec']['bytes']:.3f}; calibrated / "
              f"NNCodec: {res['calibrated']['bytes'] / res['nncodec']['bytes']:.3f} "
              "(goal < 1)")
    print(f"time: allocation {res['alloc_time']:.0f} s, calibrated {res['calib_time']:.0f} s")
    print("two-fold (tune on half the digits, score the other half):")
    for t in res["twofold"]:
        print(f"  {'with' if t['refine'] else 'without'} the greedy descent: drop "
              f"{t['tuned_drop']:.2f} on the tuning half, {t['unseen_drop']:.2f} on the other;"
              f" weight layers {t['bytes']:,} B")
    r = res["allocated"]
    print(f"allocated file: {r['bytes']:,} B = weight layers' payload {r['payload']:,} B + "
          f"other tensors (biases) {r['others']:,} B + headers and metadata "
          f"{r['bytes'] - r['payload'] - r['others']:,} B")
    print("\ncalibrated vs data-free, same setting on every layer; per layer the error of its "
          "outputs in the whole quantized model against the float model's, on the test digits "
          "(in brackets: the layer alone, on the float model's inputs):")
    print(f"{'setting':<22}{'bytes df':>9}{'bytes cal':>10}{'acc df':>8}{'acc cal':>8}"
          "  output error per layer, data-free -> calibrated")
    lower = total = alone = 0
    for r in res["calibration"]:
        df, ca = r["data-free"], r["calibrated"]
        errs = ", ".join(f"{df['model_errors'][n]:.3f}->{ca['model_errors'][n]:.3f} "
                         f"({df['errors'][n]:.3f}->{ca['errors'][n]:.3f})"
                         for n in df["errors"])
        lower += sum(ca["model_errors"][n] < df["model_errors"][n] for n in df["errors"])
        alone += sum(ca["errors"][n] < df["errors"][n] for n in df["errors"])
        total += len(df["errors"])
        print(f"{r['setting']:<22}{df['bytes']:>9,}{ca['bytes']:>10,}{df['score']:>8.2f}"
              f"{ca['score']:>8.2f}  {errs}")
    higher = sum(r["calibrated"]["score"] > r["data-free"]["score"] for r in res["calibration"])
    same = sum(r["calibrated"]["score"] == r["data-free"]["score"] for r in res["calibration"])
    print(f"calibrated output error lower in {lower} of {total} (layer, setting) cases in the "
          f"whole model, {alone} of {total} layer by layer; "
          f"accuracy higher in {higher}, equal in {same} of {len(res['calibration'])} settings")
    return rows


def plot(results: list[dict], path: Path) -> Path:
    from figures import pyplot

    plt = pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, len(results), figsize=(6.2 * len(results), 4.4))
    for ax, res in zip(np.atleast_1d(axes), results, strict=True):
        ref = res["reference"]
        c = res["curve"]
        ax.plot([p["bytes"] / 1024 for p in c], [p["score"] for p in c], "o-", color="tab:red",
                label="allocations for byte targets (data-free)")
        for kind, color in (("data-free", "tab:blue"), ("calibrated", "tab:green")):
            pts = sorted((r[kind]["bytes"], r[kind]["score"]) for r in res["calibration"])
            ax.plot([b / 1024 for b, _ in pts], [s for _, s in pts], ".", color=color,
                    label=f"uniform settings, {kind}")
        if "nncodec_points" in res:
            pts = sorted((p["bytes"], p["score"]) for p in res["nncodec_points"])
            ax.plot([b / 1024 for b, _ in pts], [s for _, s in pts], "x-", color="tab:gray",
                    lw=0.8, label="NNCodec (qp sweep)")
        for key, mark, label in (("allocated", "r*", "allocated, data-free"),
                                 ("calibrated", "g*", "allocated, calibrated"),
                                 ("uniform", "bs", "best uniform"),
                                 ("binquant_paper", "mD", "Bin & Quant")):
            if key in res:
                ax.plot(res[key]["bytes"] / 1024, res[key]["score"], mark, ms=10, label=label)
        ax.axhline(ref, color="k", ls=":", lw=1)
        ax.axhline(ref - 0.5, color="k", ls="--", lw=0.6)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(max(0, ref - 12), ref + 2)
        ax.set_xlabel("file KiB (whole model)")
        ax.set_ylabel("test accuracy (points)")
        ax.set_title(res["model"])
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    sys.path.insert(0, str(HERE))
    from nncodec_stub import parse_args

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".", help="where the CSV and the figure go")
    ap.add_argument("--max-drop", type=float, default=0.5)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--skip-plot", action="store_true")
    args = parse_args(ap, nncodec_child)
    if args is None:
        return
    from figures import write_csv

    from sparsecodec.tune.examples import digits_cnn, digits_mlp

    makers = {"mlp": digits_mlp, "cnn": digits_cnn}
    results, rows = [], []
    for key in args.models.split(","):
        res = run_model(makers[key](), args.max_drop, args.nncodec_python)
        rows += report(res, args.max_drop)
        results.append(res)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(write_csv(rows, str(out), "model_rd.csv"))
    if not args.skip_plot:
        print(f"figure: {plot(results, out / 'model_rd.png')}")


if __name__ == "__main__":
    main()
