"""Running a piece of Python in a fresh interpreter under resource limits, so that a test of a
hang, a bomb or a crash fails the test instead of the machine."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path


def run(code: str, *args: object, timeout: float = 120, mem_mb: int = 3072,
        fsize_mb: int = 512, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``code`` (dedented) run as ``python -c`` with ``args``, under RLIMIT_AS (``mem_mb``),
    RLIMIT_FSIZE (``fsize_mb``) and a timeout; numba and numpy fit in the default 3 GB."""
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb << 20, fsize_mb << 20))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, preexec_fn=limits,
                          cwd=cwd)
