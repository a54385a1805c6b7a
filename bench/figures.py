"""What the figure scripts share: matplotlib loaded headless (or a clear message), and CSV
tables written next to the figures."""

from __future__ import annotations

import csv
import os
import sys
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the file-only Agg backend, or exit with how to install it."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("the plot needs matplotlib: python -m pip install '.[bench]'")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_csv(rows: list[dict], folder: str, name: str) -> str:
    """Write ``rows`` (dicts; a key missing from a row leaves its cell empty) to
    ``folder/name``; returns the path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=fields, restval="")
        out.writeheader()
        out.writerows(rows)
    return path
