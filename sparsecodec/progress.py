"""A one-line progress bar on stderr, so that tables on stdout stay clean."""

from __future__ import annotations

import sys

_open = False  # a bar is drawn and its line not ended yet


def progress(i: int, n: int, what: str) -> None:
    """Draw step ``i`` of ``n`` (the line ends when i == n)."""
    global _open
    filled = 20 * i // max(n, 1)
    _open = i < n
    end = "" if _open else "\n"
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (20 - filled)}] {i}/{n} {what:<40}{end}")
    sys.stderr.flush()


def end_line() -> None:
    """End an unfinished bar's line, so that what follows (an error) starts a line of its
    own."""
    global _open
    if _open:
        sys.stderr.write("\n")
        _open = False
