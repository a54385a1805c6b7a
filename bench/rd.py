"""Bits per weight needed for a relative error, ``sc.compress`` against NNCodec.

    python bench/rd.py [--nncodec-python PATH] [--nncodec-points FILE.json]

For each layer (made offline: Gaussian 384x1536, Laplacian 1536x384, a 384x384 layer with
per-row and per-column scales, and the demo model's two trained hidden layers) and each
target r in 0.02, 0.05, 0.1, 0.2, 0.4 (relative Frobenius error), it measures:

- ``sc.compress(W, rel_error=r)``: the bytes of the smallest exact encoding it finds, and
  what each quantizer family alone reaches (``families=(f,)``: compress is their minimum);
- for the Gaussian and Laplacian layers, the lowest bits any coder can reach on average for
  their source at that error: Shannon's R(D) = log2(1/r) for i.i.d. Gaussian weights (exact),
  and the Shannon lower bound h - log2(2 pi e D) / 2 = log2(1/r) - log2(pi/e) / 2 for
  i.i.d. Laplacian ones (D = r^2 times the variance);
- NNCodec 2.1.3 (dependent quantization on, its default): ``qp`` swept one by one over steps
  from 2^-10 to 2^0 of the layer's largest weight (each step 2^(1/4) apart), W given as is and
  transposed. Its bits at exactly r are interpolated linearly in (log error, bits) between
  the swept points around r (those whose bits fall as the error grows), the orientation that
  does better at r taken: the benefit of the doubt, since a finer ``qp`` grid
  (``qp_density``) could reach points between the swept ones.

NNCodec needs numpy < 2, so it runs in its own environment (``--nncodec-python``, a Python with
``nncodec`` installed as ``../shared/notes/baselines.md`` says); this script sends it the
layers and reads back (error, bytes) for every setting. Without it only our side is printed.
Writes ``rd_vs_nncodec.csv`` (and the figure ``rd_vs_nncodec.png``) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TARGETS = (0.02, 0.05, 0.1, 0.2, 0.4)


def layers() -> dict[str, np.ndarray]:
    """The layers, float32, made the same way every run."""
    rng = np.random.default_rng(0)
    out = {"gauss 384x1536": rng.standard_normal((384, 1536)) * 0.05,
           "laplace 1536x384": rng.laplace(size=(1536, 384)) * 0.03}
    rows = np.exp(rng.normal(0, 0.7, (384, 1)))
    cols = np.exp(rng.normal(0, 0.7, (1, 384)))
    out["scaled 384x384"] = rng.standard_normal((384, 384)) * 0.02 * rows * cols
    with np.load(HERE.parent / "sparsecodec" / "data" / "digits_mlp.npz") as d:
        out["demo fc1 64x256"] = d["fc1.weight"]
        out["demo fc2 256x256"] = d["fc2.weight"]
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def shannon_bound(name: str, r: float) -> float:
    """Bits per weight no coder beats on average at relative error r for the layer's source:
    R(D) of i.i.d. Gaussian weights; the Shannon lower bound for i.i.d. Laplacian ones; nan
    for the other layers (no source model)."""
    if name.startswith("gauss"):
        return float(np.log2(1 / r))
    if name.startswith("laplace"):
        return float(np.log2(1 / r) - 0.5 * np.log2(np.pi / np.e))
    return float("nan")


def nncodec_child(inp: str, out: str) -> None:
    """(In NNCodec's environment.) For every layer of ``inp`` (.npz) and both orientations,
    every qp in a sweep: (relative error, bytes); written to ``out`` as JSON."""
    sys.path.insert(0, str(HERE))
    from nncodec_stub import load_nncodec

    nnc = load_nncodec()
    res: dict[str, list[tuple[float, int, str]]] = {}
    with np.load(inp) as d:
        for name in d.files:
            W = d[name]
            scale = float(np.abs(W).max())
            points = []
            for orient, A in (("as is", W), ("transposed", np.ascontiguousarray(W.T))):
                norm = float(np.linalg.norm(A.astype(np.float64)))
                e0 = int(np.floor(np.log2(scale)))
                for qp in range(4 * (e0 - 10), 4 * e0 + 1):
                    bs = nnc.compress({"w": A}, bitstream_path=None, return_bitstream=True,
                                      verbose=False, qp=qp, use_dq=True)
                    back = np.asarray(nnc.decompress(bytearray(bs))["w"], np.float64)
                    err = float(np.linalg.norm(back - A)) / norm
                    points.append((err, len(bs), orient))
            res[name] = points
    Path(out).write_text(json.dumps(res))


def nncodec_points(python: str, L: dict[str, np.ndarray]) -> dict[str, list]:
    from nncodec_stub import in_nncodec_env

    return in_nncodec_env(python, __file__, L)


def _bits_at(points: list, r: float, size: int) -> float:
    """NNCodec's bits per weight at error ``r``: per orientation, linear interpolation of bits
    against log error between the two swept points around r on the lower hull (nan outside
    the sweep); the better orientation."""
    best = float("nan")
    for orient in {o for _, _, o in points}:
        pts = sorted((e, 8 * b / size) for e, b, o in points if o == orient and e > 0)
        hull: list[tuple[float, float]] = []  # the points whose bits fall as the error grows
        for e, b in pts:
            if hull and b >= hull[-1][1]:
                continue
            hull.append((e, b))
        for (e0, b0), (e1, b1) in zip(hull, hull[1:], strict=False):
            if e0 <= r <= e1:
                t = (np.log(r) - np.log(e0)) / (np.log(e1) - np.log(e0))
                got = b0 + t * (b1 - b0)
                best = got if not np.isfinite(best) else min(best, got)
    return best


def main() -> None:
    from nncodec_stub import parse_args

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "img"))
    ap.add_argument("--nncodec-points", help="a JSON file of NNCodec's sweep: read if it "
                    "exists, else written after the sweep")
    args = parse_args(ap, nncodec_child)
    if args is None:
        return
    from figures import write_csv

    import sparsecodec as sc
    from sparsecodec.targets import FAMILIES

    L = layers()
    theirs: dict[str, list] = {}
    cache = Path(args.nncodec_points) if args.nncodec_points else None
    if cache is not None and cache.exists():  # NNCodec's sweep takes minutes: reuse it
        theirs = json.loads(cache.read_text())
    elif args.nncodec_python:
        theirs = nncodec_points(args.nncodec_python, L)
        if cache is not None:
            cache.write_text(json.dumps(theirs))
    rows, worst = [], 0.0
    fams = FAMILIES
    print(f"{'layer':<20}{'r':>6}" + "".join(f"{f:>10}" for f in fams)
          + f"{'ours b/w':>10}{'NNCodec':>9}{'ours/NNC':>9}{'bound':>7}{'bound/NNC':>10}")
    for name, W in L.items():
        for r in TARGETS:
            per = {}
            for f in fams:
                try:
                    per[f] = sc.compress(W, rel_error=r, families=(f,))
                except sc.QuantizeError:
                    continue
            fam, enc = min(per.items(), key=lambda fe: fe[1].nbytes)
            ours = 8 * enc.nbytes / W.size
            nn = _bits_at(theirs.get(name, []), r, W.size)
            ratio = ours / nn
            bound = shannon_bound(name, r)
            if np.isfinite(ratio):
                worst = max(worst, ratio)
            fbits = {f: 8 * per[f].nbytes / W.size if f in per else float("nan") for f in fams}
            rows.append({"layer": name, "rel_error": r, "ours_bits": round(ours, 4),
                         "ours_family": fam, "ours_format": enc.format,
                         **{f"{f}_bits": round(b, 4) for f, b in fbits.items()},
                         "nncodec_bits": round(nn, 4), "ratio": round(ratio, 4),
                         "bound_bits": round(bound, 4), "bound_over_nncodec":
                         round(bound / nn, 4)})
            print(f"{name:<20}{r:>6}" + "".join(f"{fbits[f]:>10.3f}" for f in fams)
                  + f"{ours:>10.3f}{nn:>9.3f}{ratio:>9.3f}{bound:>7.3f}{bound / nn:>10.3f}")
    if theirs:
        print(f"\nworst ours/NNCodec: {worst:.3f} (goal 0.95)")
    out = Path(args.out)
    print(write_csv(rows, str(out), "rd_vs_nncodec.csv"))
    if theirs:
        print(plot(rows, theirs, {k: v.size for k, v in L.items()}, out))


def plot(rows: list[dict], theirs: dict[str, list], sizes: dict[str, int], out: Path) -> Path:
    """Error against bits per weight, one panel per layer: sc.compress's points, NNCodec's
    sweep, and the rate-distortion bound where the layer's source has one."""
    from figures import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.4), squeeze=False)
    for ax, name in zip(axes[0], sizes, strict=True):
        mine = [x for x in rows if x["layer"] == name]
        ax.plot([float(x["ours_bits"]) for x in mine], [float(x["rel_error"]) for x in mine],
                "o-", label="sc.compress")
        pts = sorted(theirs[name])
        ax.plot([8 * b / sizes[name] for _, b, _ in pts], [e for e, _, _ in pts], ".",
                alpha=0.4, label="NNCodec (qp sweep)")
        r = np.logspace(-2.5, -0.2, 40)
        bound = [shannon_bound(name, x) for x in r]
        if np.isfinite(bound).all():
            ax.plot(bound, r, "k--", lw=1, label="bound (no coder below)")
        ax.set(title=name, xlabel="bits per weight", ylabel="relative error",
               yscale="log", xlim=(0, 8))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rd_vs_nncodec.png", dpi=110)
    return out / "rd_vs_nncodec.png"


if __name__ == "__main__":
    main()
