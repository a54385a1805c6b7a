"""Shared fixtures for the benchmarks and the ratio table printed at the end of a run.

Run: ``python -m pytest bench --benchmark-only`` (add ``-k`` to pick). Every speed target
is a ratio against numpy/scipy/dahuffman measured in the same run, printed in
the summary, never asserted.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsecodec.examples import pruned_quantized_layer

RESULTS: dict[str, float] = {}  # name -> best seconds (or a figure), filled by the benchmarks
NOTES: dict[str, str] = {}


@pytest.fixture
def record(benchmark):
    """Run ``fn`` under pytest-benchmark and keep its best time under ``name``."""

    def run(name: str, fn, rounds: int = 10):
        benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)
        RESULTS[name] = benchmark.stats.stats.min
        benchmark.extra_info["best_s"] = RESULTS[name]

    return run


def interleaved_best(fns: dict, rounds: int = 60) -> dict:
    """Best seconds of each function, run in turn ``rounds`` times.

    Speed on a shared machine drifts by tens of percent over a minute; alternating the
    contenders exposes them to the same drift, so their ratio is stable where timings taken
    in separate tests are not.
    """
    import time

    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


_LAYERS: dict[tuple, np.ndarray] = {}


def layer(n: int, density: float, levels: int = 32, spacing: str = "equal_mass") -> np.ndarray:
    key = (n, density, levels, spacing)
    if key not in _LAYERS:
        _LAYERS[key] = pruned_quantized_layer(n, n, density, levels, seed=0, spacing=spacing)
    return _LAYERS[key]


def _ratio(a: str, b: str) -> str:
    if a in RESULTS and b in RESULTS:
        return f"{RESULTS[a] / RESULTS[b]:.2f}"
    return "n/a"


def pytest_terminal_summary(terminalreporter):
    if not RESULTS and not NOTES:
        return
    w = terminalreporter.write_line
    w("")
    w("sparsecodec foundation figures (same run; ratios are ours / baseline, lower is better;")
    w("ratios come from interleaved runs, best of 60 each)")
    for key, label in [("huffman_msyms_1core", "Huffman decode, sHAM-like stream, 1 core"),
                       ("huffman_ham_msyms_1core", "Huffman decode, HAM-like stream, 1 core"),
                       ("dahuffman_msyms", "dahuffman decode (pure Python)")]:
        if key in RESULTS:
            w(f"  {label:<46} {RESULTS[key]:10.1f} M symbols/s")
    pairs = [("sham.rmatvec / (x @ scipy csr_matrix(W))", "sham_vec", "scipy_xcsr"),
             ("sham.rmatvec / (scipy csr_matrix(W.T) @ x)", "sham_vec", "scipy_csrT"),
             ("sham.rmatvec on 1 thread / (x @ scipy csr)", "sham_vec_1t", "scipy_xcsr"),
             ("sham.rmatmul(b=32) / numpy dense X @ W", "sham_mat", "dense_mat"),
             ("csc.rmatvec / (x @ scipy csr_matrix(W))", "csc_vec", "scipy_xcsr")]
    for d in ("10", "50"):
        if not any(k.startswith("il_") and k.endswith(f"_{d}") for k in RESULTS):
            continue
        w(f"  density {d}%:")
        for label, ours, base in pairs:
            w(f"    {label:<46}{_ratio(f'il_{ours}_{d}', f'il_{base}_{d}')}")
    for key in ("encode_ham_16M", "encode_sham_16M"):
        if key in RESULTS:
            w(f"  {key:<46} {RESULTS[key]:10.3f} s")
    for key, note in NOTES.items():
        w(f"  {key}: {note}")
