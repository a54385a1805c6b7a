"""The same workloads timed on two revisions of sparsecodec, side by side: did a change slow
anything down?

    python bench/side_by_side.py OLD_REV [--rounds 5]

OLD_REV is checked out into a temporary git worktree; the working tree is the new side. Each
round runs one process per side, alternating (old, new, new, old, ...), and each process times
every workload (best of several calls, after a warm-up that also fills its own numba cache).
The table shows, per workload, the best time of each side over all rounds and new / old; a
first round in which either side compiles is not counted. Workloads: for the layers the
benchmarks use (384x1536 and 1536x384 BERT-like, and 4096x4096; 10% and 50% dense, 32 values
by k-means), every format's encode, decode, validation from stored parts, x @ W and X @ W
(b = 32); k-means and ECSQ quantization; a container's save and load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = ("encode", "validate", "decode", "x@W", "X@W(32)")
FORMATS = ("csc", "index_map", "ham", "sham", "sham_gap", "sham_ans", "cer", "grid")
LAYERS = ((384, 1536, 0.1), (1536, 384, 0.5), (4096, 4096, 0.1))


def _best(fn, repeat: int) -> float:
    """Best of ``repeat`` calls after a warm-up (not sparsecodec.timing.best_time: an old
    revision under test may not have it)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def child(out: str, only: str) -> None:
    """Time every workload (those matching ``only``) with the sparsecodec found first on
    sys.path; write JSON."""
    import numpy as np

    import sparsecodec as sc
    from sparsecodec.examples import pruned_quantized_layer
    from sparsecodec.formats.base import Matrix, registry
    from sparsecodec.quantize import ecsq, kmeans

    print(f"timing {sc.__file__}", file=sys.stderr)
    res: dict[str, float] = {}
    pick = re.compile(only)

    def timed(name: str, fn, repeat: int) -> None:
        if pick.search(name):
            res[name] = _best(fn, repeat)

    for n, m, density in LAYERS:
        W = pruned_quantized_layer(n, m, density, 32, seed=3)
        rng = np.random.default_rng(4)
        x, X = rng.standard_normal(n), rng.standard_normal((32, n))
        reps = 3 if n * m > 10**6 else 20
        tag = f"{n}x{m}@{int(100 * density)}%"
        for fmt in FORMATS:
            if not any(pick.search(f"{fmt} {w} {tag}") for w in WORK):
                continue
            cls = registry()[fmt]
            timed(f"{fmt} encode {tag}", lambda c=cls, W=W: c.encode(Matrix(W)), 3)
            enc = cls.encode(W)
            meta, comps = enc.meta, enc.components()
            timed(f"{fmt} validate {tag}",
                  lambda c=cls, mt=meta, cp=comps: c.from_components(mt, cp), reps)
            timed(f"{fmt} decode {tag}", enc.decode, reps)
            timed(f"{fmt} x@W {tag}", lambda e=enc, x=x: x @ e, reps)
            timed(f"{fmt} X@W(32) {tag}", lambda e=enc, X=X: X @ e, max(3, reps // 4))
    A = np.random.default_rng(5).standard_normal(1 << 20).astype(np.float32)
    timed("kmeans:32 1M", lambda: kmeans(A, 32), 3)
    timed("ecsq 1M", lambda: ecsq(A, 32, lam=0.05), 3)
    if not pick.search("container"):
        Path(out).write_text(json.dumps(res))
        return
    encs = {f"w{i}": sc.encode(pruned_quantized_layer(1536, 384, 0.3, 32, seed=i), "sham")
            for i in range(8)}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.spc"
        timed("container save", lambda: sc.save(path, encs), 5)
        timed("container load+build",
              lambda: [f[k].nnz for f in [sc.open(path)] for k in f], 5)
    Path(out).write_text(json.dumps(res))


def run_side(src: Path, out: Path, only: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run([sys.executable, __file__, "--child", str(out), "--only", only], env=env,
                   check=True, cwd=src)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", nargs="?", help="the revision to compare with")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="", help="a regular expression: time only the "
                    "workloads whose name it finds")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.only)
        return
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old),
                        args.old], check=True, capture_output=True)
        try:
            best: dict[str, dict[str, float]] = {"old": {}, "new": {}}
            for r in range(args.rounds + 1):
                order = [("old", old), ("new", ROOT)] if r % 2 else [("new", ROOT), ("old", old)]
                for side, src in order:
                    got = run_side(src, Path(tmp) / f"{side}.json", args.only)
                    if r == 0:
                        continue  # the first round compiles
                    for k, v in got.items():
                        best[side][k] = min(best[side].get(k, float("inf")), v)
                print(f"round {r} done", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False)
    ratios = []
    print(f"{'workload':<44}{'old ms':>10}{'new ms':>10}{'new/old':>9}")
    for k in best["new"]:
        if k in best["old"]:
            o, n = best["old"][k], best["new"][k]
            ratios.append(n / o)
            print(f"{k:<44}{1e3 * o:>10.3f}{1e3 * n:>10.3f}{n / o:>9.3f}")
    ratios.sort()
    med = ratios[len(ratios) // 2]
    print(f"\n{len(ratios)} workloads: new/old median {med:.3f}, min {ratios[0]:.3f}, "
          f"max {ratios[-1]:.3f}; over 1.10 in {sum(r > 1.10 for r in ratios)}")


if __name__ == "__main__":
    main()
