"""The ``sparsecodec`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from .errors import SparseCodecError
from .progress import progress


def _best_time(fn: Callable[[], object], repeat: int = 5) -> float:
    fn()  # warm-up: the first call may compile (once per machine, then cached)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def demo(args: argparse.Namespace) -> int:
    """Encode a realistic pruned + quantized layer in every format and compare them."""
    import scipy.sparse as sp

    from . import api
    from .bounds import entropy_h0
    from .examples import pruned_quantized_layer
    from .formats.base import Matrix

    n = args.size
    W = pruned_quantized_layer(n, n, args.density, args.levels, seed=args.seed)
    M = Matrix(W)
    h0 = entropy_h0(M)
    x = np.random.default_rng(args.seed + 1).standard_normal(n).astype(np.float32)
    print(f"layer: {n}x{n} float32, Gaussian, magnitude-pruned to {100 * args.density:g}% "
          f"nonzeros ({M.nnz:,}), nonzeros quantized to {args.levels} values")
    print(f"zero-order entropy H0 = {h0:.4f} bits per weight "
          f"(no zero-order code of the entries can go below it)\n", flush=True)
    print("(the first run on a machine compiles the numba kernels, about a minute; "
          "they are cached)", file=sys.stderr)

    names = api.formats()
    rows = []
    for i, name in enumerate(names):
        progress(i, len(names), f"encoding and timing {name}")
        enc = api.encode(M, format=name)
        if not np.array_equal(enc.decode().view(np.uint32), W.view(np.uint32)):
            raise SparseCodecError(f"demo: {name} did not round-trip")  # never expected
        t_dec = _best_time(enc.decode, 3)
        t_dot = _best_time(lambda e=enc: e.rmatvec(x))
        rows.append((name, enc.nbytes, t_dec, t_dot))
    progress(len(names), len(names), "done")
    t_np = _best_time(lambda: x @ W)
    csr = sp.csr_matrix(W)
    t_sp = _best_time(lambda: x @ csr)

    raw = W.nbytes
    head = (f"{'format':<10} {'bytes':>11} {'bits/w':>7} {'vs f32':>7} {'vs H0':>6} "
            f"{'decode ms':>10} {'x^T W ms':>9}")
    print(head)
    print("-" * len(head))
    best = min(r[1] for r in rows)
    for name, nbytes, t_dec, t_dot in rows:
        bpw = 8 * nbytes / W.size
        mark = " <- smallest" if nbytes == best else ""
        print(f"{name:<10} {nbytes:>11,} {bpw:>7.3f} {raw / nbytes:>6.1f}x {bpw / h0:>6.2f} "
              f"{1e3 * t_dec:>10.2f} {1e3 * t_dot:>9.3f}{mark}")
    print(f"{'numpy':<10} {raw:>11,} {32:>7.3f} {1:>6.1f}x {32 / h0:>6.2f} {'':>10} "
          f"{1e3 * t_np:>9.3f}   (dense x @ W)")
    sp_bytes = csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes
    print(f"{'scipy CSR':<10} {sp_bytes:>11,} {8 * sp_bytes / W.size:>7.3f} "
          f"{raw / sp_bytes:>6.1f}x {8 * sp_bytes / W.size / h0:>6.2f} {'':>10} "
          f"{1e3 * t_sp:>9.3f}   (x @ csr_matrix)")
    print(f"\nauto picks: {api.encode(M).format}. Every format above decoded bit for bit; "
          "x^T W ran on the encoded form (decode and x^T W: best of several runs, "
          f"{numba_threads()} threads).")
    return 0


def bounds(args: argparse.Namespace) -> int:
    """Print the bounds report of a matrix file (.npy, .npz) or of every matrix in a
    sparsecodec container or HDF5 file."""
    from pathlib import Path

    from . import bounds as bd
    from .formats.base import Encoded
    from .io import load

    path = Path(args.file)
    if not path.exists():
        raise OSError(f"no such file: {path}")
    items: list[tuple[str, object]]
    if path.suffix == ".npy":
        items = [(path.name, np.load(path, allow_pickle=False))]
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            items = [(name, z[name]) for name in z.files]
    else:
        items = list(load(path).items())
    formats = args.formats.split(",") if args.formats else None
    shown = 0
    for name, x in items:
        if not isinstance(x, Encoded) and (np.ndim(x) != 2 or np.asarray(x).dtype.kind != "f"):
            print(f"== {name}: skipped ({np.ndim(x)}-D {np.asarray(x).dtype}; bounds need a "
                  "2-D float matrix)\n")
            continue
        print(f"== {name}")
        print(bd.report(x, formats))
        print()
        shown += 1
    if not shown:
        raise ValueError(f"{path} holds no 2-D float matrix")
    return 0


def numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparsecodec", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="encode a built-in example layer in every format")
    d.add_argument("--size", type=int, default=2048, help="rows = columns (default 2048)")
    d.add_argument("--density", type=float, default=0.10, help="fraction kept (default 0.10)")
    d.add_argument("--levels", type=int, default=32, help="distinct nonzero values (default 32)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=demo)
    b = sub.add_parser("bounds", help="published space bounds vs the exact bytes, per format")
    b.add_argument("file", help=".npy / .npz matrix, or a .spc / .h5 file of encoded matrices")
    b.add_argument("--formats", help="comma-separated formats (default: every one that fits)")
    b.set_defaults(func=bounds)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SparseCodecError, ValueError, OSError) as exc:
        if args.debug:
            raise
        print(f"sparsecodec: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
