"""Packing a checkpoint larger than a layer or two: peak memory of a serial pack, and wall time
serial vs ``--workers 2`` vs a Dask LocalCluster of 2 workers.

    python bench/scale.py [--gb 2.4] [--dir /tmp] [--keep]

1. Writes a synthetic sharded safetensors checkpoint of about ``--gb`` GB: 4096 x 6144 float32
   weights (about 100 MB each) and their biases, in 4 shards plus a
   ``model.safetensors.index.json``, all made here.
2. Packs it with ``--prune 90 --quantize kmeans:16 --layout torch --shard-size 512MB``, each run
   in its own process:
   - serially, which reports the peak RSS;
   - with ``--workers 2``;
   - on a Dask LocalCluster of 2 single-threaded worker processes.

   It checks that the three outputs are byte-identical.
3. Prints the table (written to ``docs/img/scale.csv``) and the per-core throughput that
   ``docs/scaling.md`` extrapolates from.

The goal for serial pack is a peak RSS under the largest tensor plus 512 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from figures import write_csv

ROWS, COLS = 4096, 6144
SETTINGS = ["--prune", "90", "--quantize", "kmeans:16", "--layout", "torch",
            "--shard-size", "512MB"]


def make_checkpoint(folder: Path, gb: float) -> tuple[Path, int, int]:
    """(index path, total bytes, largest tensor bytes)."""
    from safetensors.numpy import save_file

    per = ROWS * COLS * 4
    count = max(2, round(gb * 1e9 / per))
    nshards = 4
    weight_map = {}
    rng = np.random.default_rng(0)
    total = 0
    for s in range(nshards):
        file = f"model-{s + 1:05d}-of-{nshards:05d}.safetensors"
        tensors = {}
        for i in range(s * count // nshards, (s + 1) * count // nshards):
            w = rng.standard_normal((ROWS, COLS), dtype=np.float32)
            w *= np.exp(0.3 * rng.standard_normal((ROWS, 1), dtype=np.float32))
            tensors[f"layers.{i}.weight"] = w
            tensors[f"layers.{i}.bias"] = rng.standard_normal(ROWS, dtype=np.float32)
        save_file(tensors, str(folder / file))
        total += sum(a.nbytes for a in tensors.values())
        weight_map.update(dict.fromkeys(tensors, file))
        del tensors
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return index, total, per


def run(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes of the process and the children it waited for)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read() if proc.stderr else ""
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss * 1024


DASK_RUNNER = """
import sys
from distributed import Client, LocalCluster
from sparsecodec.cli import main
if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        sys.argv = ["sparsecodec", *sys.argv[1:], "--dask", cluster.scheduler_address]
        sys.exit(main(sys.argv[1:]))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=2.4, help="checkpoint size (default 2.4)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to write it")
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparsecodec-scale-", dir=args.dir))
    try:
        print(f"writing a {args.gb} GB checkpoint in {work} ...", file=sys.stderr)
        index, total, largest = make_checkpoint(work, args.gb)
        runner = work / "dask_runner.py"
        runner.write_text(DASK_RUNNER)
        cli = [sys.executable, "-m", "sparsecodec.cli"]
        runs = {"serial": [*cli, "pack", str(index), "-o", str(work / "serial" / "m.spc"),
                           *SETTINGS],
                "workers 2": [*cli, "pack", str(index), "-o", str(work / "workers" / "m.spc"),
                              *SETTINGS, "--workers", "2"],
                "dask LocalCluster(2)": [sys.executable, str(runner), "pack", str(index), "-o",
                                         str(work / "dask" / "m.spc"), *SETTINGS]}
        rows = []
        for name, cmd in runs.items():
            Path(cmd[cmd.index("-o") + 1]).parent.mkdir()
            print(f"{name} ...", file=sys.stderr)
            wall, rss = run(cmd)
            rows.append({"run": name, "seconds": round(wall, 1), "peak_rss_mb": rss >> 20,
                         "input_gb": round(total / 1e9, 2)})
        outs = [work / d for d in ("serial", "workers", "dask")]
        contents = [{p.name: p.read_bytes() for p in sorted(o.iterdir())} for o in outs]
        identical = contents[0] == contents[1] == contents[2]
        packed = sum(len(b) for b in contents[0].values())
        nweights = total // 4
        for r in rows:
            r["packed_mb"] = round(packed / 1e6, 1)
            r["identical"] = identical
        write_csv(rows, args.out, "scale.csv")
        print(f"\n{total / 1e9:.2f} GB in ({nweights / 1e6:.0f}M weights, largest tensor "
              f"{largest / 1e6:.0f} MB), {packed / 1e6:.1f} MB out; outputs identical: "
              f"{identical}\n")
        print("| run | wall s | peak RSS MB (this process) | weights/s |")
        print("|---|---:|---:|---:|")
        for r in rows:
            rss = r["peak_rss_mb"] if r["run"] == "serial" else f"{r['peak_rss_mb']} (parent)"
            print(f"| {r['run']} | {r['seconds']} | {rss} | "
                  f"{nweights / r['seconds'] / 1e6:.1f}M |")
        serial = rows[0]
        budget = (largest >> 20) + 512
        verdict = "met" if serial["peak_rss_mb"] <= budget else "NOT met"
        print(f"\nserial peak RSS {serial['peak_rss_mb']} MB against the budget of the largest "
              f"tensor + 512 MB = {budget} MB: {verdict}")
        cores = os.cpu_count() or 1
        print(f"throughput per core (serial run, numba on all {cores} cores): "
              f"{nweights / serial['seconds'] / cores / 1e6:.1f}M weights/s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
