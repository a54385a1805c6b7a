"""Timing for the CLI and the demo: best-of-n wall time, the kernels' thread count, and the
note printed before a first run compiles."""

from __future__ import annotations

import time
from collections.abc import Callable

# measured with an empty numba cache on a 2-core machine (docs/performance.md)
FIRST_RUN = ("(the first run on a machine compiles the numba kernels, about 75-90 s on 2 cores; "
             "they are cached for later runs)")


def best_time(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()  # warm-up: the first call may compile (once per machine, then cached)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())
