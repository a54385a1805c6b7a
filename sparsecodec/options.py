"""The choices that the API and the command line share, named once and importable without
loading any kernel (``--help`` lists them): objectives, layouts, and the format names a
file or ``--format`` may use."""

from __future__ import annotations

from .plugins import format_entry_points

OBJECTIVES = ("size", "speed")
"""What ``auto`` optimises: the fewest bytes, or the fastest ``x @ W`` within a size."""

LAYOUTS = ("as-is", "torch", "keras")
"""How a framework stores a weight: as-is (already (in, out)), torch ((out, in) and OIHW
kernels) or keras ((in, out) and HWIO kernels)."""

LAYOUT_CHOICES = ("auto", *LAYOUTS)
"""``pack --layout``: auto takes each tensor's layout from its file (``TensorSource.layout``)."""


BUILTIN_FORMATS = ("dense", "csr", "csc", "coo", "index_map", "ham", "sham", "sham_gap",
                   "sham_ans", "cer", "cser", "pq", "grid", "scaled", "float_ans")
"""The formats this release reads and writes, in the order of ``sc.formats()`` (a test keeps
the two equal): file headers are checked against it without importing the formats."""


def format_choices() -> list[str]:
    """``auto`` and every format name, built in and from installed plugins, without importing
    the formats."""
    return ["auto", *BUILTIN_FORMATS,
            *(ep.name for ep in format_entry_points() if ep.name not in BUILTIN_FORMATS)]
