"""Time to first result: every CLI command, run as a new process with an empty numba cache
(cold: everything it uses is compiled) and again with that cache filled (warm).

    python bench/startup.py [--formats sham,ham,...] [--repeat 3]

Prints one row per command and writes docs/img/startup.csv. The input is the demo model's
(70% pruned, k-means 32) matrices packed in one format per file, so a command touches the
kernels of that format only. ``import`` rows time ``import sparsecodec`` against
``import numpy, scipy.sparse``.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    t = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formats", default="sham,ham,sham_ans,grid",
                    help="formats of the packed file (one cold cache each)")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs (best is reported)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "startup.csv"))
    args = ap.parse_args()
    exe = [sys.executable, "-m", "sparsecodec.cli"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import numpy as np

        from sparsecodec.demo import example
        tensors = example()[0]
        np.savez(Path(tmp) / "model.npz", **tensors)

        def run(name: str, argv: list[str], fmt: str, cache: str) -> None:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            cold = timed(argv, env, tmp)
            warm = min(timed(argv, env, tmp) for _ in range(args.repeat))
            rows.append({"command": name, "format": fmt, "cold_s": round(cold, 2),
                         "warm_s": round(warm, 3)})
            print(f"{name:<40}{fmt:<10}{cold:>9.2f}{warm:>9.3f}", flush=True)

        print(f"{'command':<40}{'format':<10}{'cold s':>9}{'warm s':>9}")
        for label, code in (("import numpy, scipy.sparse", "import numpy, scipy.sparse"),
                            ("import sparsecodec", "import sparsecodec")):
            warm = min(timed([sys.executable, "-c", code], dict(os.environ), tmp)
                       for _ in range(args.repeat + 2))
            rows.append({"command": label, "format": "-", "cold_s": "", "warm_s": round(warm, 3)})
            print(f"{label:<40}{'-':<10}{'':>9}{warm:>9.3f}")
        cache = str(Path(tmp) / "cache-demo")
        run("demo --no-plot", [*exe, "demo", "--no-plot"], "auto", cache)
        for fmt in args.formats.split(","):
            cache = str(Path(tmp) / f"cache-{fmt}")
            spc = f"m-{fmt}.spc"
            # the pack itself also compiles the quantizer and the format's encoder
            run("pack --prune 70 --quantize kmeans:32",
                [*exe, "pack", "model.npz", "-o", spc, "--prune", "70", "--quantize",
                 "kmeans:32", "--format", fmt], fmt, cache)
            for name, argv in (("info", ["info", spc]), ("verify", ["verify", spc]),
                               ("unpack", ["unpack", spc, "-o", f"back-{fmt}.npz"]),
                               ("bench", ["bench", spc]), ("bounds", ["bounds", spc])):
                cache = str(Path(tmp) / f"cache-{fmt}-{name}")  # cold for this command alone
                run(name, [*exe, *argv], fmt, cache)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
