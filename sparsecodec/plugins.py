"""Formats from other packages: the ``sparsecodec.formats`` entry-point group.

A package adds a format by declaring, in its ``pyproject.toml``::

    [project.entry-points."sparsecodec.formats"]
    myformat = "mypackage.myformat:MyFormat"

where ``MyFormat`` is an :class:`sparsecodec.formats.base.Encoded` subclass whose ``format``
is ``"myformat"``. Entry points are listed without importing anything (the container's header
check knows their names), and loaded on the first look-up of the registry.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata

GROUP = "sparsecodec.formats"


@cache
def format_entry_points() -> tuple[metadata.EntryPoint, ...]:
    """The installed entry points of the group, in a stable order (read once a process)."""
    return tuple(sorted(metadata.entry_points(group=GROUP), key=lambda ep: ep.name))
