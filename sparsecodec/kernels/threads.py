"""How many threads a product gets: one for small work or on a saturated machine, all of them
(with dynamic scheduling) otherwise.

A parallel region waits for its slowest thread. On a machine where other processes keep the
cores busy, the OS leaves one of our threads off its core for a time slice (milliseconds), and
a product that takes 50 microseconds alone then takes milliseconds: measured p95/best of 100
to 400 on 384-wide layers with statically split work. Small products therefore run on the
calling thread only (no thread start-up, nothing to wait for); large ones split their work in
small chunks handed out on demand (numba's ``parallel_chunksize``), so that a delayed thread
holds up only the chunk it holds; and when other work fills the cores, large ones run serially
too (a serial product on a busy machine is slower by the share of the core it gets, not by a
time slice per call). Other work is the 1-minute load average, or (Linux) the tasks running
or ready to run at this moment besides the caller: the average takes a minute to see a new
busy process, and meanwhile two threads on two busy cores decoded ``float_ans`` 5-15x slower
than one thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numba

PARALLEL_WORK = 1 << 18      # multiply-adds below which a product runs on one thread
_LOAD_EVERY = 0.5            # seconds between reads of the load average
_load = [0.0, -1.0]          # (value, when read)


def runnable_others(path: str = "/proc/loadavg") -> int:
    """Tasks running or ready to run now besides the caller: the fourth field of Linux's
    ``/proc/loadavg`` ("running/total") less one; 0 where there is no such file."""
    try:
        with open(path, "rb") as fh:
            return max(0, int(fh.read().split()[3].split(b"/")[0]) - 1)
    except (OSError, IndexError, ValueError):
        return 0


def saturated() -> bool:
    """True when other work leaves less than half a core free: the 1-minute load average, or
    the tasks runnable at this moment (:func:`runnable_others`), whichever is higher (read at
    most every half second; False where the OS tells neither)."""
    now = time.monotonic()
    if now - _load[1] > _LOAD_EVERY:
        try:
            average = os.getloadavg()[0]
        except OSError:  # pragma: no cover - platforms without a load average
            average = 0.0
        _load[0] = max(average, float(runnable_others()))
        _load[1] = now
    return _load[0] > (os.cpu_count() or 1) - 0.5


def parallel(work: int) -> bool:
    """Whether a product of ``work`` multiply-adds should use every thread."""
    return work >= PARALLEL_WORK and numba.get_num_threads() > 1 and not saturated()


@contextmanager
def for_work(work: int) -> Iterator[bool]:
    """Run the numba kernels called inside on every thread with dynamic scheduling when
    ``parallel(work)``, else on the calling thread alone. Yields that choice. The thread count
    numba uses is per calling thread, so concurrent callers do not disturb each other."""
    if parallel(work):
        with numba.parallel_chunksize(1):
            yield True
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield False
    finally:
        numba.set_num_threads(before)
