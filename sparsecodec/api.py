"""``encode`` and ``formats``: the entry points over the format registry."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .errors import OptionError, UnknownFormatError
from .formats.base import Encoded, Matrix, registry
from .options import OBJECTIVES


def formats() -> list[str]:
    """Names of the registered formats, in registration order."""
    return list(registry())


def _accepted(cls: type[Encoded], opts: dict[str, Any]) -> dict[str, Any]:
    """The options of ``opts`` that format ``cls`` takes (``auto`` passes each option on to
    the formats that accept it)."""
    return {k: v for k, v in opts.items() if k in cls.options}


def sizes(W: Any, **opts: Any) -> dict[str, int]:
    """Exact ``nbytes`` every format would take for ``W`` (formats that cannot hold it are left
    out, bfloat16 for all but ``dense`` and ``float_ans``). Options apply to the formats that
    accept them. Only ``sham_ans`` and ``float_ans`` are encoded (an rANS stream's length is
    known once coded); ``encode`` on the same ``Matrix`` reuses them."""
    M = W if isinstance(W, Matrix) else Matrix(W)
    out = {}
    for name, cls in registry().items():
        if M.dtype.name not in cls.dtypes:
            continue
        size = cls.size_of(M, **_accepted(cls, opts))
        if size is not None:
            out[name] = size
    return out


def candidate_sizes(M: Matrix, margin: int = 0, **opts: Any) -> dict[str, int]:
    """``sizes`` of the formats that can come within ``margin`` bytes of the smallest: in
    registration order (the cheap, exactly sized formats first), a format whose
    ``lower_bound`` already exceeds the smallest size found by more than ``margin`` is not
    sized at all, and the others are sized with that limit (``size_within``: a format may
    stop once past it). On unquantized floats that skips every value-table format (sizing
    ``sham_ans`` means encoding it) and stops ``grid``'s fit after a block or two."""
    out: dict[str, int] = {}
    best = float("inf")
    for name, cls in registry().items():
        if M.dtype.name not in cls.dtypes or cls.lower_bound(M) > best + margin:
            continue
        size = cls.size_within(M, best + margin, **_accepted(cls, opts))
        if size is not None:
            out[name] = size
            best = min(best, size)
    return out


SPEED_MAX_BITS = 10.0  # objective="speed" chooses among formats at most this many bits/weight


def encode(W: Any, format: str = "auto", objective: str = "size", **opts: Any) -> Encoded:
    """Encode the 2-D float matrix ``W`` losslessly in ``format``.

    ``format="auto"`` picks the format with the fewest stored bytes (computed exactly from the
    matrix statistics, without encoding every candidate; ties go to the earlier registered
    format). With ``objective="speed"`` it picks instead the format whose ``x @ W`` is fastest
    *on this machine*, among those of at most ``SPEED_MAX_BITS`` bits per weight (all of them
    if none is that small): every candidate is encoded and timed (best of 3 interleaved
    calls), so the choice costs an encoding per candidate and may differ between machines and
    runs when two formats are close. Format options (``block_symbols``, ``max_code_length``,
    ``bits``, ``code_bits``) are passed on; with ``auto`` each goes to the formats that accept
    it. ``decode()`` of the result equals ``W`` bit for bit.
    """
    reg = registry()
    M = W if isinstance(W, Matrix) else Matrix(W)
    if objective not in OBJECTIVES:
        raise OptionError(f"objective must be one of {OBJECTIVES}, found {objective!r}")
    if format == "auto":
        known = {o for cls in reg.values() for o in cls.options}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise OptionError(f"auto: unknown option(s) {unknown}")
        if objective == "speed":
            return fastest(M, sizes(M, **opts), opts)
        table = candidate_sizes(M, **opts)
        format = min(table, key=table.__getitem__)
        opts = _accepted(reg[format], opts)
    if format not in reg:
        raise UnknownFormatError(f"unknown format {str(format)[:40]!r}; choose one of "
                                 f"{formats() + ['auto']}")
    return reg[format].encode(M, **opts)


def fastest(M: Matrix, table: dict[str, int], opts: dict[str, Any],
            max_bits: float = SPEED_MAX_BITS) -> Encoded:
    """The encoding of ``M`` whose one-vector product is fastest here, among the formats of
    ``table`` (name -> bytes) within ``max_bits`` bits per weight (or all)."""
    reg = registry()
    n, m = M.shape
    small = [f for f, b in table.items() if 8 * b <= max_bits * max(n * m, 1)]
    encs = {f: reg[f].encode(M, **_accepted(reg[f], opts))
            for f in (small or list(table))}
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    best = dict.fromkeys(encs, np.inf)
    for e in encs.values():  # warm: compile, caches
        x @ e
    for _ in range(3):
        for f, e in encs.items():
            t = time.perf_counter()
            x @ e
            best[f] = min(best[f], time.perf_counter() - t)
    return encs[min(best, key=best.__getitem__)]


def to_compute(enc: Encoded, max_bits: float = SPEED_MAX_BITS) -> Encoded:
    """The matrix of ``enc`` in the format whose ``x @ W`` is fastest on this machine, among
    those of at most ``max_bits`` bits per weight (``enc`` itself when it is that format):
    for a file stored for size (say ``sham_ans``) that is then multiplied many times. Its
    ``nbytes`` is the memory it holds. Decodes ``enc`` once and encodes every candidate."""
    M = Matrix(enc.decode())
    return fastest(M, sizes(M), {}, max_bits)
