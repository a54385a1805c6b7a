"""The ``sparsecodec`` command line."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .errors import OptionError, SparseCodecError
from .progress import end_line
from .timing import FIRST_RUN, best_time, numba_threads


def demo(args: argparse.Namespace) -> int:
    """The built-in example model, pruned, quantized, packed and run compressed (or, with
    ``--layer``, one synthetic layer in every format)."""
    from .demo import run, run_layer

    if args.layer:
        return run_layer(args.size, args.density, args.levels, args.seed)
    print(FIRST_RUN, file=sys.stderr)
    run(prune=args.prune, k=args.k, plot=None if args.no_plot else args.plot,
        finetune=not args.no_finetune)
    return 0


def bounds(args: argparse.Namespace) -> int:
    """Print the bounds report of a matrix file (.npy, .npz) or of every matrix in a
    sparsecodec container or HDF5 file."""
    from pathlib import Path

    from . import bounds as bd
    from .formats.base import Encoded
    from .io import load
    from .io.filetypes import framework_kind

    path = Path(args.file)
    if not path.exists():
        raise OSError(f"no such file: {path}")
    items: list[tuple[str, object]]
    if path.suffix.lower() == ".npy":  # mapped: a header claiming more than it holds fails
        items = [(path.name, np.load(path, mmap_mode="r", allow_pickle=False))]
    elif framework_kind(path) == "npz":
        from .adapters import npz

        items = list(npz.read(path, args.max_bytes).items())
    else:
        items = list(load(path, max_bytes=args.max_bytes).items())
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


def _keras_spec(path: str) -> list[dict[str, Any]] | None:
    """The runtime description of a Keras Sequential model, or None (said on stderr)."""
    from . import adapters

    try:
        return adapters.keras_h5.sequential_spec(path)
    except (SparseCodecError, KeyError, ValueError) as exc:
        print(f"(no runnable model description: {exc})", file=sys.stderr)
        return None


def parse_size(text: str | None, option: str = "--shard-size") -> int | None:
    """'2GB', '512MiB', '1.5G', '1000000' -> bytes (decimal units, binary with 'i')."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?)[bB]?\s*", text)
    if not m:
        raise ValueError(f"{option} {text!r}: expected a size like 2GB, 512MiB or 1000000")
    power = " kmgt".index(m.group(2).lower() or " ")
    size = int(float(m.group(1)) * (1024 if m.group(3) else 1000) ** power)
    if size < 1:
        raise ValueError(f"{option} {text!r} is below one byte")
    return size


def parse_budget(text: str) -> Any:
    """--max-bytes: 'auto' (the default rule), 'none' (no limit) or a size."""
    word = text.strip().lower()
    if word == "auto":
        return "auto"
    if word == "none":
        return None
    return parse_size(text, "--max-bytes")


def _model_input(path: str, max_bytes: Any = "auto"
                 ) -> tuple[Any, list[dict[str, Any]] | None]:
    """What ``pack`` reads: the path itself for framework files (safetensors, their index and
    .npz are read one tensor at a time; every file type tells the layout of its weights), else
    the tensors of a sparsecodec file; and the runnable model description of a Keras
    Sequential .h5."""
    from .io import filetypes

    kind = filetypes.kind_of(path)
    if kind in (filetypes.CONTAINER, filetypes.HDF5):
        from .pack import unpack

        return unpack(path, max_bytes), None
    return path, _keras_spec(path) if kind == "keras" else None


def pack_cmd(args: argparse.Namespace) -> int:
    """Prune, quantize and encode every weight matrix of a model file into one container, or
    into shards and an index."""
    from .io.sharded import files_of
    from .pack import pack

    tensors, model = _model_input(args.input, args.max_bytes)
    if args.target_size is not None or args.max_drop is not None:
        return _tuned(args, tensors, args.model or model)
    if args.eval or args.calibration or args.plot or args.menu != "full":
        raise OptionError("--eval, --calibration, --plot and --menu go with --target-size or "
                          "--max-drop")
    rows = pack(tensors, args.output, prune=args.prune, quantize=args.quantize,
                max_bytes=args.max_bytes,
                format=args.format, layers=args.layers, layout=args.layout,
                show_progress=True, model=args.model or model,
                shard_size=parse_size(args.shard_size), workers=args.workers, dask=args.dask,
                objective=args.objective, max_error=args.max_error, bits=args.bits,
                fold_batchnorm=args.fold_batchnorm)
    width = name_width(r.name for r in rows)
    print(f"{'tensor':<{width}}{'shape':>16}{'matrix':>14}{'zeros':>7}{'k':>6} {'format':<10}"
          f"{'bytes':>12}{'bits/w':>8}{'limit B':>11}")
    raw = packed = 0
    for r in rows:
        raw += r.raw_bytes
        packed += r.nbytes
        size = int(np.prod(r.shape)) if r.shape else 1
        mat = "x".join(map(str, r.matrix)) if r.matrix else "-"
        print(f"{short_name(r.name, width):<{width}}"
              f"{'x'.join(map(str, r.shape)) or '()':>16}{mat:>14}"
              f"{'' if r.zeros is None else f'{r.zeros:.2f}':>7}{'' if r.k is None else r.k:>6} "
              f"{r.format:<10}{r.nbytes:>12,}{8 * r.nbytes / max(size, 1):>8.3f}"
              f"{'' if r.limit_bytes is None else f'{r.limit_bytes:,.0f}':>11}")
    for r in rows:
        if r.note:
            print(f"note: {r.name}: {r.note}")
    on_disk = sum(p.stat().st_size for p in files_of(args.output))
    print(f"total: {raw:,} bytes in, {packed:,} bytes of tensors ({raw / max(packed, 1):.1f}x), "
          f"file {on_disk:,} bytes; 'limit' = positions + values entropy bound")
    return 0


def _tuned(args: argparse.Namespace, tensors: Any, model: Any) -> int:
    """``pack --target-size/--max-drop --eval``: allocate per layer, pack, report."""
    from .sources import open_source
    from .tune.allocate import QUICK, layers_of, menu
    from .tune.evaluation import load_function
    from .tune.model import plot, read_calibration, tune_and_pack

    if not args.eval:
        raise OptionError("--target-size and --max-drop need --eval MODULE:FUNCTION")
    if args.prune is not None or args.quantize is not None:
        raise OptionError("--target-size/--max-drop choose pruning and quantization per "
                          "layer: drop --prune and --quantize")
    evaluate = load_function(args.eval)
    src = open_source(tensors, args.max_bytes)
    weights = {n: np.asarray(src[n]) for n in src}
    layout = src.layout if args.layout == "auto" else args.layout
    spec = model
    if isinstance(model, str):
        from .runtime.model import read_spec

        spec = read_spec(model, list(weights))
    layers = layers_of(weights, None, layout)
    hessians = None
    if args.calibration:
        hessians = read_calibration(args.calibration, weights, layers, spec, args.max_bytes)
    target = parse_size(args.target_size, "--target-size")
    settings = None
    if args.menu == "quick":
        settings = {layer.name: menu(layer.matrix.shape, **QUICK)  # type: ignore[arg-type]
                    for layer in layers}
    alloc, rows, points = tune_and_pack(weights, args.output, evaluate, target_size=target,
                                        max_drop=args.max_drop, hessians=hessians,
                                        layout=layout, model=spec, max_bytes=args.max_bytes,
                                        source=tensors, settings=settings)
    width = name_width(alloc.choices)
    print(f"{'layer':<{width}}{'matrix':>12}  {'setting':<24}{'format':<28}{'bytes':>10}"
          f"{'bits/w':>8}{'error':>8}")
    for n, c in alloc.choices.items():
        fmt = c.stored.format
        print(f"{short_name(n, width):<{width}}{'x'.join(map(str, c.matrix.shape)):>12}  "
              f"{c.setting.label:<24}{fmt[:27]:<28}{c.nbytes:>10,}"
              f"{8 * c.nbytes / c.matrix.size:>8.3f}{c.error:>8.3f}")
    size = os.path.getsize(args.output)
    print(f"score {alloc.score:.4g} (float model {alloc.reference:.4g}, drop "
          f"{alloc.drop:.4g}); file {size:,} bytes; {alloc.evaluations} evaluations")
    print("score vs size (weight layers):  " + ", ".join(
        f"{p['bytes']:,} B -> {p['score']:.4g}" for p in points))
    if args.plot:
        print(f"plot: {plot(alloc, points, args.plot)}")
    return 0


def unpack_cmd(args: argparse.Namespace) -> int:
    """Decode a packed file back to a framework file (.npz, .safetensors)."""
    from pathlib import Path

    from . import adapters
    from .io.sharded import index_for
    from .pack import unpack

    if not Path(args.input).exists() and index_for(args.input) is None:
        raise OSError(f"no such file: {args.input}")
    tensors = unpack(args.input, args.max_bytes)
    adapters.write(args.output, tensors, template=args.template)
    print(f"wrote {len(tensors)} tensors to {args.output}")
    return 0


def info_cmd(args: argparse.Namespace) -> int:
    """Header, per-tensor format and size, and metadata of a sparsecodec file. Reads the
    header only: nothing is decoded or compiled (``verify`` checks the tensors)."""
    from pathlib import Path

    from .io import open_file
    from .io.sharded import files_of, index_for

    if not Path(args.file).exists() and index_for(args.file) is None:
        raise OSError(f"no such file: {args.file}")
    with open_file(args.file, max_bytes=args.max_bytes) as f:
        files = files_of(args.file)
        print(f"{args.file}: {len(f)} tensors, {sum(p.stat().st_size for p in files):,} bytes"
              + (f" in {len(files) - 1} shards and an index" if len(files) > 1 else ""))
        width = name_width(f)
        print(f"{'tensor':<{width}}  {'format':<10}{'shape':>14}{'dtype':>9}{'bytes':>12}"
              f"{'bits/w':>8}")
        for name in f:
            t = f.info(name)
            size = math.prod(t.shape)
            print(f"{short_name(name, width):<{width}}  {t.format:<10}"
                  f"{'x'.join(map(str, t.shape)) or '()':>14}{t.dtype:>9}"
                  f"{t.nbytes:>12,}{8 * t.nbytes / max(size, 1):>8.3f}")
        for key, value in f.metadata.items():
            print(f"metadata {key}: {value if len(value) < 200 else value[:200] + '...'}")
    return 0


MAX_NAME_WIDTH = 60


def name_width(names: Iterable[str]) -> int:
    """The name column's width in a per-tensor table: the longest name, at most 60."""
    return min(max([6, *(len(n) for n in names)]), MAX_NAME_WIDTH)


def short_name(name: str, width: int) -> str:
    """``name`` if it fits ``width``, else its start and end around '...', so that both the
    model part and the layer number and kind stay visible."""
    if len(name) <= width:
        return name
    tail = (width - 3) * 2 // 3
    return name[:width - 3 - tail] + "..." + name[len(name) - tail:]


def verify_cmd(args: argparse.Namespace) -> int:
    """Check every checksum, decode every tensor, and account for every stored bit."""
    from pathlib import Path

    from . import bounds as bd
    from .formats.base import Encoded
    from .io import open_file
    from .io.sharded import index_for

    if not Path(args.file).exists() and index_for(args.file) is None:
        raise OSError(f"no such file: {args.file}")
    with open_file(args.file, verify=True, max_bytes=args.max_bytes) as f:
        for name in f:
            x = f[name]
            if isinstance(x, Encoded):
                W = x.decode()
                acc = bd.account(x)
                if W.shape != x.shape or sum(acc.bits.values()) != 8 * x.nbytes:
                    raise ValueError(f"{name}: decoded shape or byte account inconsistent")
                print(f"ok  {name}: {x.format} {x.shape[0]}x{x.shape[1]}, decoded, "
                      f"{x.nbytes:,} bytes accounted "
                      f"({', '.join(f'{k} {v // 8:,}' for k, v in acc.bits.items() if v)})")
            else:
                np.asarray(x).sum()  # touches every byte: the checksum is checked on access
                print(f"ok  {name}: array {x.shape} {x.dtype}")
    print(f"{args.file}: every checksum, decode and byte account verified")
    return 0


def bench_cmd(args: argparse.Namespace) -> int:
    """Per encoded matrix of a file: decode time, and x @ W on the encoded form against numpy
    on the decoded matrix (best of several runs, same process)."""
    from pathlib import Path

    from .formats.base import Encoded
    from .io import open_file

    if not Path(args.file).exists():
        raise OSError(f"no such file: {args.file}")
    rng = np.random.default_rng(0)
    seen = 0
    with open_file(args.file, max_bytes=args.max_bytes) as f:
        width = name_width(f)
        print(f"{'tensor':<{width}}  {'format':<10}{'shape':>12}{'decode ms':>11}{'x@W ms':>9}"
              f"{'numpy ms':>10}{'ratio':>7}{'X@W b=32':>10}{'numpy':>8}{'ratio':>7}")
        for name in f:
            enc = f[name]
            if not isinstance(enc, Encoded):
                continue
            seen += 1
            n, m = enc.shape
            W = enc.decode()
            x = rng.standard_normal(n).astype(np.float32)
            X = rng.standard_normal((32, n)).astype(np.float32)
            t_dec = best_time(enc.decode, 3)
            t_vec = best_time(lambda e=enc, x=x: x @ e)
            t_np = best_time(lambda W=W, x=x: x @ W)
            t_mat = best_time(lambda e=enc, X=X: X @ e, 3)
            t_npm = best_time(lambda W=W, X=X: X @ W, 3)
            print(f"{short_name(name, width):<{width}}  {enc.format:<10}{f'{n}x{m}':>12}"
                  f"{1e3 * t_dec:>11.3f}"
                  f"{1e3 * t_vec:>9.3f}{1e3 * t_np:>10.3f}{t_np / t_vec:>6.2f}x"
                  f"{1e3 * t_mat:>10.3f}{1e3 * t_npm:>8.3f}{t_npm / t_mat:>6.2f}x")
    if not seen:
        raise ValueError(f"{args.file} holds no encoded matrix")
    print("ratio = numpy time / encoded time (above 1: the encoded product is faster); "
          f"{numba_threads()} threads")
    return 0


def _extensions(table: dict[str, Any]) -> str:
    """The extensions of an adapter table, as help text (the same table the adapters use)."""
    names = {".h5": "Keras .h5", ".hdf5": ".hdf5", ".pt": "torch .pt", ".pth": ".pth"}
    return ", ".join(names.get(e, e) for e in table)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .adapters import READERS, WRITERS
    from .io.container import VERSION as CONTAINER_VERSION
    from .options import LAYOUT_CHOICES, OBJECTIVES, format_choices

    p = argparse.ArgumentParser(prog="sparsecodec", description=__doc__)
    p.add_argument("--version", action="version", version=f"sparsecodec {__version__} "
                   f"(writes container version {CONTAINER_VERSION})")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--max-bytes", default="auto", metavar="SIZE",
                   help="decode budget of each matrix read from a file: 'auto' (default: "
                        "256 MB, or 1024x its stored bytes if more), a size like 64GB, or "
                        "'none'; a file asking for more is refused (docs/container.md)")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="prune, quantize, pack and run the built-in example model")
    d.add_argument("--prune", type=float, default=70, help="percent pruned (default 70)")
    d.add_argument("-k", type=int, default=32, help="shared values per layer (default 32)")
    d.add_argument("--plot", default="sparsecodec-demo.png", help="PNG to write")
    d.add_argument("--no-plot", action="store_true", help="write no PNG")
    d.add_argument("--no-finetune", action="store_true", help="skip the fine-tuning of the "
                   "shared values (NumPy, about a second per pruning level)")
    d.add_argument("--layer", action="store_true",
                   help="instead: one synthetic layer in every format, with timings")
    d.add_argument("--size", type=int, default=2048, help="rows = columns (default 2048)")
    d.add_argument("--density", type=float, default=0.10, help="fraction kept (default 0.10)")
    d.add_argument("--levels", type=int, default=32, help="distinct nonzero values (default 32)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=demo)
    b = sub.add_parser("bounds", help="published space bounds vs the exact bytes, per format")
    b.add_argument("file", help=".npy / .npz matrix, or a .spc / .h5 file of encoded matrices")
    b.add_argument("--formats", help="comma-separated formats (default: every one that fits)")
    b.set_defaults(func=bounds)
    pk = sub.add_parser("pack", help="prune, quantize and encode a model file into one file")
    pk.add_argument("input", help=f"a model file ({_extensions(READERS)}; a sharded "
                    ".safetensors.index.json) or a sparsecodec file (.spc)")
    pk.add_argument("-o", "--output", required=True, help="the .spc (or .h5) file to write")
    pk.add_argument("--prune", type=float, help="magnitude-prune each matrix at P percent")
    pk.add_argument("--quantize", help="kmeans:32, uniform:16, optimal:8, probabilistic:16, "
                    "ecsq:32 (levels), int:4 or int:8 (bits; a scale per output, the "
                    "fastest to compute with) or pq:d=8,k=256")
    target = pk.add_mutually_exclusive_group()
    target.add_argument("--max-error", type=float, metavar="E",
                        help="instead of --quantize: each weight matrix gets the smallest "
                        "exact encoding whose relative error ||W - Q|| / ||W|| is at most E, "
                        "quantizer and format searched together (sc.compress; "
                        "docs/quantize.md)")
    target.add_argument("--bits", type=float, metavar="B",
                        help="instead of --quantize: each weight matrix gets the least error "
                        "within B bits per weight (sc.compress)")
    target.add_argument("--target-size", metavar="SIZE",
                        help="tune per layer (sparsecodec.tune, docs/tuning.md) for a file of "
                        "at most SIZE (2MB, 512KiB, bytes) with the least score drop; needs "
                        "--eval")
    target.add_argument("--max-drop", type=float, metavar="D",
                        help="tune per layer for the smallest file whose score is at most D "
                        "below the float model's; needs --eval")
    pk.add_argument("--eval", metavar="MODULE:FUNCTION",
                    help="with --target-size/--max-drop: a function mapping a dict of the "
                    "model's arrays to a score, higher is better (MODULE may be a .py path)")
    pk.add_argument("--calibration", metavar="DATA.npz",
                    help="with --target-size/--max-drop: layer inputs for calibration-aware "
                    "quantization (GPTQ/SparseGPT): an array per weight tensor name "
                    "(samples, inputs), or 'x' (model inputs, run through --model)")
    pk.add_argument("--plot", metavar="PNG", help="with --target-size/--max-drop: write the "
                    "allocation (bits per layer) and score vs size")
    pk.add_argument("--menu", choices=("full", "quick"), default="full",
                    help="with --target-size/--max-drop: the settings tried per layer: full "
                    "(38: prune x k-means levels, error targets, low rank) or quick (10)")
    pk.add_argument("--format", default="auto", choices=format_choices(),
                    metavar="FORMAT", help="auto (default) or a format: "
                    f"{', '.join(format_choices()[1:])}")
    pk.add_argument("--objective", default="size", choices=OBJECTIVES,
                    help="what auto optimises: the smallest file (default) or the fastest "
                         "x @ W on this machine, among formats of at most 10 bits/weight")
    pk.add_argument("--layers", help="regex: only matching tensors are compressed")
    pk.add_argument("--layout", default="auto", choices=LAYOUT_CHOICES,
                    help="how the file stores weights: auto (default: per tensor, as the file "
                         "says: torch state dicts, Keras .h5, safetensors metadata, the ONNX "
                         "operator using it), or one layout for every tensor (docs/adapters.md,"
                         " Layouts)")
    pk.add_argument("--shard-size", help="write shards of about this much input each (2GB, "
                    "512MiB) and an index OUTPUT.index.json; finished shards are kept and "
                    "skipped on a rerun")
    pk.add_argument("--workers", type=int, default=1,
                    help="encode in N workers (tensors, or shards with --shard-size): threads "
                         "where numba's threading layer allows it (omp, tbb), else processes "
                         "(docs/adapters.md)")
    pk.add_argument("--dask", metavar="ADDRESS", help="map the shards over the Dask cluster "
                    "at ADDRESS (e.g. tcp://host:8786); workers read the input themselves")
    pk.add_argument("--model", metavar="SPEC.json", help="a layer list for runtime.load_model "
                    "(docs/adapters.md, 'Running a packed model'), stored in the file; Keras "
                    "Sequential .h5 files get one without it")
    pk.add_argument("--fold-batchnorm", action="store_true", help="fold every batchnorm "
                    "layer of --model that follows a linear or conv2d layer into that layer's "
                    "weight and bias before quantizing")
    pk.set_defaults(func=pack_cmd)
    up = sub.add_parser("unpack", help=f"decode a packed file to a model file "
                        f"({_extensions(WRITERS)})")
    up.add_argument("input")
    up.add_argument("-o", "--output", required=True,
                    help=f"the file to write: {_extensions(WRITERS)} (the extension decides)")
    up.add_argument("--template", help="for .onnx and Keras .h5: the original model, whose "
                    "graph or layer structure is kept")
    up.set_defaults(func=unpack_cmd)
    inf = sub.add_parser("info", help="per-tensor formats, sizes and metadata of a file")
    inf.add_argument("file")
    inf.set_defaults(func=info_cmd)
    ver = sub.add_parser("verify", help="checksums, full decode and byte account of a file")
    ver.add_argument("file")
    ver.set_defaults(func=verify_cmd)
    bn = sub.add_parser("bench", help="decode and x @ W speed per matrix vs numpy dense")
    bn.add_argument("file")
    bn.set_defaults(func=bench_cmd)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.max_bytes = parse_budget(args.max_bytes)
        return int(args.func(args))
    except MemoryError:
        end_line()
        if args.debug:
            raise
        print("sparsecodec: error: out of memory (a smaller --max-bytes refuses such files "
              "up front)", file=sys.stderr)
        return 2
    except (SparseCodecError, ValueError, OSError) as exc:
        end_line()
        if args.debug:
            raise
        print(f"sparsecodec: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
