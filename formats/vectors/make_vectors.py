"""Regenerate the golden test vectors: ``python formats/vectors/make_vectors.py``.

For every registered format, ``<format>.spc`` holds the tensors below, encoded in that format;
``<tensor>.npy`` is the matrix each must decode to (the same for every format).
``tests/test_vectors.py`` checks both ways: the files decode to the arrays, and encoding the
arrays again reproduces the files byte for byte. Regenerate only for an intended format
change, and say so in the commit. The matrices are built by arithmetic, not by a random
generator, so they never drift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sparsecodec as sc
from sparsecodec.formats.base import registry

HERE = Path(__file__).resolve().parent


def matrices() -> dict[str, np.ndarray]:
    small = np.zeros((7, 5), np.float32)
    small[[0, 2, 3, 6, 6, 1], [0, 1, 1, 4, 2, 3]] = [0.5, -1.25, 0.5, 3.0, -1.25, 0.5]
    small[4, 0] = -0.0                           # a stored negative zero
    small.view(np.uint32)[5, 4] = 0x7FC0_0123    # a NaN with a payload
    half = (np.arange(24, dtype=np.float16).reshape(4, 6) % 5 - 2) / 4
    # 40 values whose counts fall from 1024 to 1: Huffman codes past the 11-bit table
    counts = np.maximum(1, (2.0 ** (10 - np.arange(40) / 4)).astype(np.int64))
    vals = np.repeat(np.arange(1, 41, dtype=np.float32) / 8, counts)
    order = (np.arange(vals.size) * 7919) % vals.size  # a fixed shuffle (7919 is prime)
    skew = np.zeros(vals.size, np.float32)
    skew[order] = vals
    cols = 53
    skew = skew[: (skew.size // cols) * cols].reshape(-1, cols)
    return {
        "small": small,
        "half": half,
        "empty": np.zeros((0, 4), np.float32),
        "constant": np.full((3, 3), 1.5, np.float32),
        "zeros": np.zeros((4, 4), np.float64),
        "long_codes": skew,
    }


# tiny blocks so that even these small matrices have several blocks and lanes
OPTIONS = {"ham": {"block_symbols": 16, "max_code_length": 24},
           "sham": {"block_symbols": 8, "max_code_length": 24},
           "sham_gap": {"block_symbols": 8, "max_code_length": 24}}


# every other variant a user can write, pinned in ``<format>.<variant>.spc``: the default code
# length limit (11 bits: the decode table's width), sham_ans's row order and contexts and its
# dependent-quantization state contexts (parities stored with float symbols, derived from
# grid symbols), pq at
# other sub-vector lengths with Huffman-coded and packed indices, grid's 8-bit codes
VARIANTS = {
    "ham.default": ("ham", {}),
    "sham.default": ("sham", {}),
    "sham_gap.default": ("sham_gap", {}),
    "sham_ans.rows": ("sham_ans", {"order": "rows", "gap_model": "prev+line+rem",
                                   "value_model": "sig+pos+line", "block_symbols": 16}),
    "sham_ans.plain": ("sham_ans", {"order": "columns", "gap_model": "none",
                                    "value_model": "none"}),
    "sham_ans.state": ("sham_ans", {"order": "columns", "gap_model": "rem+state",
                                    "value_model": "sig+state", "block_symbols": 16,
                                    "symbol_table": "floats"}),
    "sham_ans.grid-state": ("sham_ans", {"order": "columns", "gap_model": "rem+state",
                                         "value_model": "sig+state", "block_symbols": 16}),
    "pq.d3-huffman": ("pq", {"d": 3, "index_coding": "huffman", "block_symbols": 8}),
    "pq.d1-packed": ("pq", {"d": 1, "index_coding": "packed"}),
    "grid.bits8": ("grid", {"code_bits": 8}),
}


FLOATS = "float_ans.floats"  # unquantized floats of every width, for float_ans alone
STATES64 = ("weights_float32", "weights_float16")  # also stored with 64 rANS states


def float_matrices() -> dict[str, np.ndarray]:
    """Weights with row and column scales (arithmetic, not random) in every float type, and
    every special bit pattern: NaN payloads of both signs, infinities, +-0.0, the smallest
    and largest subnormals and the largest finite value."""
    from sparsecodec.dtypes import bfloat16

    i = np.arange(40, dtype=np.float64)[:, None]
    j = np.arange(36, dtype=np.float64)[None, :]
    base = np.sin(i * 12.9898 + j * 78.233) * np.cos(i * 0.37 - j * 1.1)
    W = base * 2.0 ** (i % 5 - 8) * 2.0 ** (j % 3 / 2)
    out = {}
    for name, dt in (("float16", np.float16), ("bfloat16", bfloat16()),
                     ("float32", np.float32), ("float64", np.float64)):
        A = W.astype(np.float32).astype(dt)
        bits = A.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[A.itemsize])
        nb = 8 * A.itemsize
        E = {"float16": 5, "bfloat16": 8, "float32": 8, "float64": 11}[name]
        P = nb - 1 - E
        u = bits.dtype.type
        emax = u(((1 << E) - 1) << P)
        special = [emax | u(1), emax | u(1 << (P - 1)) | u(5), u(1 << (nb - 1)) | emax | u(3),
                   emax, u(1 << (nb - 1)) | emax, u(0), u(1 << (nb - 1)), u(1),
                   u((1 << P) - 1), u(1 << (nb - 1)) | u(1), emax - u(1)]
        bits[0, :len(special)] = special  # the first row: every special pattern
        bits[5:9, 3] = 0                   # a run of +0.0
        out[f"weights_{name}"] = A
    return out


def float_encodings() -> dict[str, sc.Encoded]:
    """float_ans of every matrix of :func:`float_matrices` with 32 rANS states (their size),
    and of the float32 and float16 ones again with 64 (the states of large matrices)."""
    from sparsecodec.formats import float_ans as fa

    floats = float_matrices()
    out = {k: sc.encode(A, format="float_ans", block_symbols=256) for k, A in floats.items()}
    was = fa.STATES_64_FROM
    fa.STATES_64_FROM = 0
    try:
        for k in STATES64:
            out[f"{k}_states64"] = sc.encode(floats[k], format="float_ans", block_symbols=256)
    finally:
        fa.STATES_64_FROM = was
    return out


def float_bits(A: np.ndarray) -> np.ndarray:
    return A.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[A.itemsize])


def encode_all(fmt: str, opts: dict | None = None) -> dict[str, sc.Encoded]:
    opts = OPTIONS.get(fmt, {}) if opts is None else opts
    return {name: sc.encode(W, format=fmt, **opts) for name, W in matrices().items()}


def main() -> None:
    for fmt in registry():
        sc.save(HERE / f"{fmt}.spc", encode_all(fmt), metadata={"vectors": fmt})
        print(f"wrote {fmt}.spc")
    for variant, (fmt, opts) in VARIANTS.items():
        sc.save(HERE / f"{variant}.spc", encode_all(fmt, opts), metadata={"vectors": variant})
        print(f"wrote {variant}.spc")
    for name, W in matrices().items():
        np.save(HERE / f"{name}.npy", W)
    print(f"wrote the {len(matrices())} expected arrays")
    floats = float_matrices()
    sc.save(HERE / f"{FLOATS}.spc", float_encodings(), metadata={"vectors": FLOATS})
    np.savez(HERE / f"{FLOATS}.npz", **{k: float_bits(A) for k, A in floats.items()})
    print(f"wrote {FLOATS}.spc and its expected bits")


if __name__ == "__main__":
    main()
