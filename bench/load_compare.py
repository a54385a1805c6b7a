"""Load time of the 100M-parameter benchmark file, this tree against another checkout, side by
side: ``python bench/load_compare.py --baseline /path/to/other/checkout``.

Each checkout writes the file (24 layers of 2048x2048, pruned to 10%, 32 values, plus biases:
the model of ``bench/test_container.py``) with its own code, then the two load their files in
alternating subprocesses (interleaved rounds, so both see the same machine drift), each round
reporting the best of several loads: ``sc.load`` verified (every checksum), unverified, and
open + first ``x @ W``. The ratios new / baseline are printed; below 1.10 is within 10%.
(Run ``git worktree add /tmp/base <commit>`` to get a baseline checkout.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

MAKE = """
import sys, numpy as np, sparsecodec as sc
from sparsecodec.examples import pruned_quantized_layer
tensors = {}
for i in range(24):
    tensors[f"l{i}.weight"] = sc.encode(pruned_quantized_layer(2048, 2048, 0.10, 32, seed=i))
    tensors[f"l{i}.bias"] = np.linspace(-0.1, 0.1, 2048, dtype=np.float32)
sc.save(sys.argv[1], tensors, metadata={"model": "synthetic-100M"})
"""

TIME = """
import sys, time, numpy as np, sparsecodec as sc
path = sys.argv[1]
x = np.ones(2048, np.float32)
def first():
    f = sc.open(path)
    return x @ f["l0.weight"]
for fn in (lambda: sc.load(path), first):
    fn()  # warm: numba kernels compiled or loaded from the cache
out = []
for fn in (lambda: sc.load(path), lambda: sc.load(path, verify=False), first):
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    out.append(best)
print(" ".join(f"{v:.6f}" for v in out))
"""

LABELS = ("load all (verified)", "load all (unverified)", "open + first x @ W")


def _run(code: str, tree: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, check=True,
                          capture_output=True, text=True, cwd=tree).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, type=Path, help="the other checkout")
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    trees = {"baseline": args.baseline.resolve(), "this tree": HERE}
    with tempfile.TemporaryDirectory() as tmp:
        files = {k: str(Path(tmp) / f"{k.replace(' ', '_')}.spc") for k in trees}
        for k, tree in trees.items():
            _run(MAKE, tree, files[k])
        best = {k: [float("inf")] * 3 for k in trees}
        for r in range(args.rounds):
            for k, tree in trees.items():
                times = [float(v) for v in _run(TIME, tree, files[k]).split()]
                best[k] = [min(a, b) for a, b in zip(best[k], times, strict=True)]
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        sizes = {k: os.path.getsize(f) for k, f in files.items()}
    print(f"100.7M parameters; file {sizes['this tree']:,} bytes (baseline "
          f"{sizes['baseline']:,}); best of {args.rounds} interleaved rounds x 5 loads")
    print(f"{'':<24}{'baseline':>12}{'this tree':>12}{'ratio':>8}")
    for i, label in enumerate(LABELS):
        b, n = best["baseline"][i], best["this tree"][i]
        print(f"{label:<24}{1e3 * b:>10.2f}ms{1e3 * n:>10.2f}ms{n / b:>8.3f}")


if __name__ == "__main__":
    main()
