"""``encode`` and ``formats``: the entry points over the format registry."""

from __future__ import annotations

from typing import Any

from .errors import EncodeError
from .formats.base import Encoded, Matrix, registry


def formats() -> list[str]:
    """Names of the registered formats, in registration order."""
    return list(registry())


def sizes(W: Any, **opts: Any) -> dict[str, int]:
    """Exact ``nbytes`` every format would take for ``W`` (formats that cannot hold it are left
    out). Options apply to the formats that accept them. Only ``sham_ans`` is encoded (an rANS
    stream's length is known once coded); ``encode`` on the same ``Matrix`` reuses it."""
    M = W if isinstance(W, Matrix) else Matrix(W)
    out = {}
    for name, cls in registry().items():
        size = cls.size_of(M, **{k: v for k, v in opts.items() if k in cls.options})
        if size is not None:
            out[name] = size
    return out


def encode(W: Any, format: str = "auto", **opts: Any) -> Encoded:
    """Encode the 2-D float matrix ``W`` losslessly in ``format``.

    ``format="auto"`` picks the format with the fewest stored bytes (computed exactly from the
    matrix statistics, without encoding every candidate; ties go to the earlier registered
    format). Format options (``block_symbols``, ``max_code_length``, ``bits``) are passed on;
    with ``auto`` each goes to the formats that accept it. ``decode()`` of the result equals
    ``W`` bit for bit.
    """
    reg = registry()
    M = W if isinstance(W, Matrix) else Matrix(W)
    if format == "auto":
        known = {o for cls in reg.values() for o in cls.options}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise EncodeError(f"auto: unknown option(s) {unknown}")
        table = sizes(M, **opts)
        format = min(table, key=table.__getitem__)
        opts = {k: v for k, v in opts.items() if k in reg[format].options}
    if format not in reg:
        raise EncodeError(f"unknown format {format!r}; choose one of {formats() + ['auto']}")
    return reg[format].encode(M, **opts)
