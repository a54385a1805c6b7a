"""A one-line progress bar on stderr, so that tables on stdout stay clean."""

from __future__ import annotations

import sys


def progress(i: int, n: int, what: str) -> None:
    """Draw step ``i`` of ``n`` (the line ends when i == n)."""
    filled = 20 * i // max(n, 1)
    end = "\n" if i >= n else ""
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (20 - filled)}] {i}/{n} {what:<40}{end}")
    sys.stderr.flush()
