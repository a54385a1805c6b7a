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

   It checks that the three outputs are byte-identical. Two more serial packs give the memory
   table rows of denser and richer settings: ``--quantize kmeans:256`` without pruning, and
   ``--prune 50 --quantize kmeans:32``.
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
# serial runs for the memory table only: more values and more nonzeros cost the encoders more
MEMORY_RUNS = {"serial, kmeans:256, no pruning": ["--quantize", "kmeans:256"],
               "serial, prune 50, kmeans:32": ["--prune", "50", "--quantize", "kmeans:32"]}


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


def run(cmd: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS of the packing process, peak RSS of any process it started),
    in bytes, as the process itself reports them on exit (``RUNNER``)."""
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stderr.splitlines() if x.startswith("MAXRSS"))
    _, me, children = line.split()
    return wall, int(me) << 10, int(children) << 10


RUNNER = """
import atexit, resource, sys
from sparsecodec.cli import main

def report():
    # VmHWM is this process's own high-water mark; ru_maxrss would carry over the peak of the
    # process that forked us (Linux keeps it across exec)
    try:
        with open("/proc/self/status") as f:
            me = next(int(x.split()[1]) for x in f if x.startswith("VmHWM"))
    except OSError:
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("MAXRSS", me, kids, file=sys.stderr)

if __name__ == "__main__":
    atexit.register(report)
    if sys.argv[1] == "--dask":
        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            code = main([*sys.argv[2:], "--dask", cluster.scheduler_address])
    else:
        code = main(sys.argv[1:])
    sys.exit(code)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=2.4, help="checkpoint size (default 2.4)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to write it")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    ap.add_argument("--keep", action="store_true", help="keep the files")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparsecodec-scale-", dir=args.dir))
    try:
        print(f"writing a {args.gb} GB checkpoint in {work} ...", file=sys.stderr)
        index, total, largest = make_checkpoint(work, args.gb)
        runner = work / "runner.py"
        runner.write_text(RUNNER)
        cli = [sys.executable, str(runner)]
        runs = {"serial": [*cli, "pack", str(index), "-o", str(work / "serial" / "m.spc"),
                           *SETTINGS],
                "workers 2": [*cli, "pack", str(index), "-o", str(work / "workers" / "m.spc"),
                              *SETTINGS, "--workers", "2"],
                "dask LocalCluster(2)": [*cli, "--dask", "pack", str(index), "-o",
                                         str(work / "dask" / "m.spc"), *SETTINGS]}
        rows = []
        for name, cmd in runs.items():
            Path(cmd[cmd.index("-o") + 1]).parent.mkdir()
            print(f"{name} ...", file=sys.stderr)
            wall, rss, child = run(cmd)
            rows.append({"run": name, "seconds": round(wall, 1), "peak_rss_mb": rss >> 20,
                         "worker_peak_rss_mb": child >> 20, "input_gb": round(total / 1e9, 2)})
        for i, (name, extra) in enumerate(MEMORY_RUNS.items()):
            out = work / f"memory{i}" / "m.spc"
            out.parent.mkdir()
            print(f"{name} ...", file=sys.stderr)
            wall, rss, child = run([*cli, "pack", str(index), "-o", str(out), *extra,
                                    "--layout", "torch", "--shard-size", "512MB"])
            rows.append({"run": name, "seconds": round(wall, 1), "peak_rss_mb": rss >> 20,
                         "worker_peak_rss_mb": child >> 20, "input_gb": round(total / 1e9, 2)})
        outs = [work / d for d in ("serial", "workers", "dask")]
        contents = [{p.name: p.read_bytes() for p in sorted(o.iterdir())} for o in outs]
        identical = contents[0] == contents[1] == contents[2]
        packed = sum(len(b) for b in contents[0].values())
        nweights = total // 4
        for r in rows[:3]:
            r["packed_mb"] = round(packed / 1e6, 1)
            r["identical"] = identical
        for r in rows[3:]:
            r["packed_mb"] = r["identical"] = ""
        write_csv(rows, args.out, "scale.csv")
        print(f"\n{total / 1e9:.2f} GB in ({nweights / 1e6:.0f}M weights, largest tensor "
              f"{largest / 1e6:.0f} MB), {packed / 1e6:.1f} MB out; outputs identical: "
              f"{identical}\n")
        print("| run | wall s | peak RSS MB: packing process / largest worker | weights/s |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['run']} | {r['seconds']} | {r['peak_rss_mb']} / "
                  f"{r['worker_peak_rss_mb'] or '-'} | {nweights / r['seconds'] / 1e6:.1f}M |")
        serial = rows[0]
        budget = (largest >> 20) + 512
        for r in (serial, *rows[3:]):
            verdict = "met" if r["peak_rss_mb"] <= budget else "NOT met"
            print(f"\n{r['run']}: peak RSS {r['peak_rss_mb']} MB against the budget of the "
                  f"largest tensor + 512 MB = {budget} MB: {verdict}")
        cores = os.cpu_count() or 1
        print(f"throughput per core (serial run, numba on all {cores} cores): "
              f"{nweights / serial['seconds'] / cores / 1e6:.1f}M weights/s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
