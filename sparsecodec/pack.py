"""Packing a model's tensors into one sparsecodec file and back.

``pack`` turns every floating-point weight tensor (two or more dimensions, optionally only
those whose name matches a regex) into our (inputs, outputs) matrix, prunes, quantizes and
encodes it, and stores everything else (biases, integer buffers) as plain arrays. How each
tensor was turned into a matrix is recorded in the file's metadata, so ``unpack`` restores
every tensor in its original shape and layout.

Layouts (our matrices are always W of shape (inputs, outputs), y = x @ W):

- ``as-is``: 2-D tensors are taken as (inputs, outputs) already (Keras Dense, NumPy code);
  tensors of more dimensions are flattened to (prod(shape[:-1]), shape[-1]).
- ``torch``: a 2-D weight is (outputs, inputs) (``nn.Linear``) and is transposed; a 4-D
  weight is an OIHW convolution kernel, reshaped so that each input channel's kh x kw patch is
  kh*kw consecutive rows (``quantize.conv_to_matrix``).
- ``keras``: 2-D kernels are (inputs, outputs); 4-D kernels are HWIO.
- ``auto`` (the default): each tensor as its file says (``TensorSource.layout``): torch state
  dicts are ``torch``; Keras ``.h5`` files ``keras``; safetensors files by their header's
  ``__metadata__`` "format" ("pt": ``torch``, "tf": ``keras``); an ONNX weight by the operator
  that uses it (``MatMul``: ``as-is``, ``Gemm`` with ``transB=1`` and ``Conv``: ``torch``);
  ``as-is`` where nothing says. The transform applied to each tensor is in its record.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import quantize as qz
from .api import candidate_sizes, encode
from .bounds import entropy_limits
from .dtypes import is_bfloat16, widen
from .errors import (
    FormatError,
    OptionError,
    PackError,
    QuantizeError,
    ShapeError,
    SparseCodecError,
)
from .formats.base import Encoded, Matrix, get_format
from .io import ContainerWriter, open_file, save
from .io.container import file_cost
from .io.files import atomic_output
from .io.filetypes import is_hdf5_name
from .io.sharded import INDEX_SUFFIX
from .io.tensors import Budget, check_shape, parse_json
from .options import LAYOUT_CHOICES, LAYOUTS, OBJECTIVES
from .progress import progress
from .sources import TensorSource, open_source
from .targets import check_target, compress

META_KEY = "sparsecodec.pack"
FILE_COST_MARGIN = 2048  # bytes: how far a format's header entry and padding can move it
LOSSLESS_MIN = 64  # elements: a float array smaller than this is stored as it is


class _HDF5Writer:
    """The ``ContainerWriter`` interface for the HDF5 backend: tensors are collected and the
    file is written at the end (h5py files are not streamed through a temporary)."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.metadata: dict[str, str] = {}
        self.tensors: dict[str, Any] = {}

    def add(self, name: str, tensor: Any) -> None:
        self.tensors[name] = tensor

    def __enter__(self) -> _HDF5Writer:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            save(self.path, self.tensors, metadata=self.metadata)


def _writer(path: str | os.PathLike) -> Any:
    return _HDF5Writer(path) if is_hdf5_name(path) else ContainerWriter(path)


@dataclass(frozen=True)
class PackedTensor:
    """One line of the pack report."""

    name: str
    shape: tuple[int, ...]
    matrix: tuple[int, int] | None  # None: stored as a plain array
    format: str
    nbytes: int
    raw_bytes: int
    zeros: float | None = None       # fraction of zero entries in the stored matrix
    k: int | None = None             # distinct nonzero values
    limit_bytes: float | None = None  # positions + values entropy limit
    note: str | None = None          # what was done instead of the settings (a fallback)


def to_matrix(a: np.ndarray, layout: str) -> tuple[np.ndarray, str]:
    """The (inputs, outputs) matrix of a weight tensor and the name of the transform used
    (which :func:`matrix_shape` decides)."""
    if layout not in LAYOUTS:
        raise OptionError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    _, transform = matrix_shape(a.shape, layout)
    if transform == "none":
        return a, transform
    if transform == "T":
        return np.ascontiguousarray(a.T), transform
    if transform in ("oihw", "hwio"):
        return qz.conv_to_matrix(a, transform.upper()), transform
    return np.ascontiguousarray(a.reshape(-1, a.shape[-1])), transform


def matrix_shape(shape: tuple[int, ...], layout: str) -> tuple[tuple[int, int], str]:
    """The shape of :func:`to_matrix`'s matrix for a tensor of ``shape`` (2 or more
    dimensions), and its transform, without the tensor."""
    if len(shape) == 2:
        return ((shape[1], shape[0]), "T") if layout == "torch" else (shape, "none")
    if len(shape) == 4 and layout == "torch":
        o, i, kh, kw = shape
        return (i * kh * kw, o), "oihw"
    if len(shape) == 4 and layout == "keras":
        kh, kw, i, o = shape
        return (i * kh * kw, o), "hwio"
    return (int(np.prod(shape[:-1])), shape[-1]), "flatten"


def from_matrix(W: np.ndarray, transform: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`to_matrix`."""
    if transform == "none":
        return W
    if transform == "T":
        return np.ascontiguousarray(W.T)
    if transform == "oihw":
        return qz.matrix_to_conv(W, shape, "OIHW")  # type: ignore[arg-type]
    if transform == "hwio":
        return qz.matrix_to_conv(W, shape, "HWIO")  # type: ignore[arg-type]
    if transform == "flatten":
        return W.reshape(shape)
    raise FormatError(f"unknown tensor transform {transform!r} in the pack metadata")


def parse_quantizer(spec: str | None) -> tuple[str, dict[str, int]] | None:
    """``"kmeans:32"`` -> ("kmeans", {"k": 32}); ``"pq:d=8,k=256"`` -> ("pq", {...})."""
    if not spec:
        return None
    method, _, args = spec.partition(":")
    methods = (*qz.METHODS, "pq", "int")
    if method not in methods or method == "gwk":
        raise QuantizeError(f"--quantize: unknown method {method!r}; use one of "
                            f"{', '.join(m for m in methods if m != 'gwk')} as METHOD:K "
                            "(pq:d=8,k=256; int:BITS)")
    opts: dict[str, int] = {}
    try:
        for part in filter(None, args.split(",")):
            key, eq, val = part.partition("=")
            if eq:
                opts[key.strip()] = int(val)
            else:
                opts["k"] = int(key)
    except ValueError as exc:
        raise QuantizeError(f"--quantize {spec!r}: arguments must be integers") from exc
    need = {"d", "k"} if method == "pq" else {"k"}
    if method == "int" and set(opts) == need and not 2 <= opts["k"] <= 8:
        raise QuantizeError(f"--quantize {spec!r}: int takes a bit width from 2 to 8")
    if set(opts) != need:
        raise QuantizeError(f"--quantize {spec!r}: {method} takes "
                            f"{'d=D,k=K' if method == 'pq' else 'K'}")
    return method, opts


def _encode(M: Matrix, fmt: str, objective: str = "size") -> Encoded:
    """``encode``, except that ``auto`` judges a format by what it adds to the file (its
    components, its header entry and their alignment), not by its component bytes alone: on a
    small layer a format with more components or a longer meta loses what its components win.
    Only the formats within ``FILE_COST_MARGIN`` bytes of the smallest by component bytes are
    encoded to compare."""
    if fmt != "auto":
        return encode(M, format=fmt)
    if objective == "speed":
        return encode(M, objective="speed")
    table = candidate_sizes(M, margin=FILE_COST_MARGIN)
    best = min(table.values())
    return min((encode(M, format=f) for f, size in table.items()
                if size <= best + FILE_COST_MARGIN), key=file_cost)


# probabilistic rounding is not position-free; gwk is, given each weight's importance
_POSITION_FREE = ("kmeans", "uniform", "optimal", "ecsq", "gwk")


def _target(max_error: float | None, bits: float | None, quantize: str | None
            ) -> tuple[str, float] | None:
    """``sc.compress``'s target from ``max_error`` or ``bits`` (at most one, not with a
    quantizer), checked."""
    given = [(k, v) for k, v in (("rel_error", max_error), ("bits_per_weight", bits))
             if v is not None]
    if not given:
        return None
    if len(given) > 1 or quantize is not None:
        raise OptionError("give one of quantize, max_error and bits")
    kind, value = given[0]
    return kind, check_target("max_error" if kind == "rel_error" else "bits", value)


def _compress(holder: list[np.ndarray], prune: float | None,
              quant: tuple[str, dict[str, int]] | None, fmt: str, objective: str = "size",
              target: tuple[str, float] | None = None, importance: np.ndarray | None = None
              ) -> tuple[Encoded, Matrix | None, str | None]:
    """The encoded matrix, and the exact matrix it holds, analysed once for both the encoder
    and the report (None for pq: it never exists), and a note when the quantizer could not be
    applied to this tensor and a fallback was (pq on a tensor with fewer sub-vectors than
    codewords keeps the tensor unquantized; None otherwise). The matrix comes in a one-item
    list that is emptied, so that it can be freed as soon as its pruned copy exists.
    ``importance``: the matrix's per-weight importance, which ``("gwk", {"k": K})`` needs
    (``sparsecodec.torch`` computes it from gradients)."""
    W = holder.pop()
    if prune or quant is not None or target is not None:
        W = widen(W)  # the quantizers compute on float32 and up (bfloat16 widens exactly)
    if prune:
        W = qz.prune(W, prune).weights
    if target is not None:  # --max-error / --bits: sc.compress searches quantizer and format
        kind, value = target
        enc = (compress(W, rel_error=value, format=fmt, objective=objective)
               if kind == "rel_error" else
               compress(W, bits_per_weight=value, format=fmt, objective=objective))
        return enc, Matrix(enc.decode()), None
    if quant is None:
        M = Matrix(W)
        return _encode(M, fmt, objective), M, None
    method, opts = quant
    if method == "pq":
        mask = W != 0 if prune else None
        try:
            return qz.product_quantize(W, opts["d"], opts["k"], mask=mask, pad=True), None, None
        except QuantizeError as exc:  # too small for the codebook: stored unquantized
            M = Matrix(W)
            return _encode(M, fmt, objective), M, f"pq refused ({exc}): not quantized"
    if method in _POSITION_FREE:
        # these quantizers see only the nonzero values, wherever they are: quantize those
        # (a tenth of the entries at 90% pruning) and write them back, instead of building
        # full-size values and labels next to W (tested to give the same values)
        if not prune:
            W = W.copy()  # W may be the caller's array
        mask = W != 0
        v = W[mask]
        if method == "ecsq":
            q = qz.ecsq(v, 4 * opts["k"], levels=opts["k"])
        elif method == "gwk":
            q = qz.gwk(v, opts["k"], importance=None if importance is None
                       else importance[mask])
        else:
            q = qz.quantize(v, method, opts["k"])
        del v
        W[~mask] = 0  # -0.0 becomes +0.0, as the quantizers make it
        W[mask] = q.values
        del q, mask
        M = Matrix(W)
    elif method == "int":
        M = Matrix(qz.integer(W, opts["k"]).values)
    else:
        M = Matrix(qz.quantize(W, method, opts["k"]).values)
    del W
    return _encode(M, fmt, objective), M, None


@dataclass(frozen=True)
class _Settings:
    """What every tensor is packed with; picklable, so that workers receive it."""

    prune: float | None
    quant: tuple[str, dict[str, int]] | None
    format: str
    layout: str
    layers: str | None
    objective: str = "size"
    target: tuple[str, float] | None = None  # ("rel_error" | "bits_per_weight", value)
    plan: Any = None  # {name: Encoded | LowRank}: what to store for those tensors (tune)
    plan_labels: Any = None  # {name: the setting that made it}, recorded in the metadata

    def is_weight(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> bool:
        return (_is_float(dtype) and len(shape) >= 2 and int(np.prod(shape)) > 0
                and (self.layers is None or re.search(self.layers, name) is not None))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prune": self.prune, "quantize": list(self.quant) if self.quant else None,
            "format": self.format, "layout": self.layout, "layers": self.layers}
        if self.objective != "size":  # files packed for size keep their metadata unchanged
            out["objective"] = self.objective
        if self.target is not None:
            out[self.target[0]] = self.target[1]
        if self.plan_labels:
            out["tuned"] = dict(self.plan_labels)
        return out


def _pack_tensor(source: TensorSource, name: str, st: _Settings
                 ) -> tuple[Encoded | np.ndarray, PackedTensor, dict[str, Any] | None]:
    """Read, convert, prune, quantize and encode one tensor: (what to store, its report line,
    its record for ``unpack``, None for a plain array). Each intermediate copy is dropped as
    soon as the next exists, so a tensor of B bytes needs about 3B of working memory."""
    try:
        a = np.asarray(source[name])
        shape, nbytes = a.shape, a.nbytes
        layout = source.layout(name) if st.layout == "auto" else st.layout
        if not st.is_weight(name, a.shape, a.dtype):
            return _lossless(name, a, layout)
        W, transform = to_matrix(a, layout)
        del a
        matrix = W.shape
        if st.plan is not None and name in st.plan:
            return _planned(name, shape, nbytes, W, transform, st.plan[name])
        holder = [W]
        del W
        enc, held, note = _compress(holder, st.prune, st.quant, st.format, st.objective,
                                    st.target)
        k = limit = None
        if held is not None:
            limit = entropy_limits(held).sparse / 8
            k = held.nonzero_k
        row = PackedTensor(name, shape, matrix, enc.format, enc.nbytes, nbytes,
                           1 - enc.nnz / (matrix[0] * matrix[1]), k, limit, note)
        rec = {"shape": list(shape), "transform": transform}
        if note is not None:
            rec["note"] = note
        return enc, row, rec
    except PackError:
        raise
    except Exception as exc:
        raise PackError(f"tensor {name!r}: {type(exc).__name__}: {exc}") from exc


def _is_float(dtype: Any) -> bool:
    return np.dtype(dtype).kind == "f" or is_bfloat16(dtype)


def _lossless(name: str, a: np.ndarray, layout: str
              ) -> tuple[Encoded | np.ndarray, PackedTensor, dict[str, Any] | None]:
    """A tensor that is not a weight to quantize: a float one of at least ``LOSSLESS_MIN``
    entries in ``float_ans`` (as a matrix: a vector is one row) when that adds fewer bytes to
    the file than the array itself, anything else as it is."""
    shape, nbytes = a.shape, a.nbytes
    if _is_float(a.dtype) and a.ndim >= 1 and a.size >= LOSSLESS_MIN:
        W, transform = to_matrix(a, layout)
        enc = encode(W, format="float_ans")
        if file_cost(enc) < file_cost(a):
            return (enc, PackedTensor(name, shape, W.shape, enc.format, enc.nbytes, nbytes),
                    {"shape": list(shape), "transform": transform})
    return a, PackedTensor(name, shape, None, "array", nbytes, nbytes), None


def _planned(name: str, shape: tuple[int, ...], nbytes: int, W: np.ndarray, transform: str,
             stored: Any) -> tuple[Any, PackedTensor, dict[str, Any]]:
    """What ``plan`` gives for a tensor (``sparsecodec.tune``'s choice), checked against the
    tensor's matrix; a low-rank layer is recorded with its parts."""
    if tuple(stored.shape) != W.shape:
        raise PackError(f"tensor {name!r}: the plan holds a {stored.shape} matrix for its "
                        f"{W.shape} one")
    rec: dict[str, Any] = {"shape": list(shape), "transform": transform}
    parts = getattr(stored, "parts", None)
    if parts is not None:
        rec["lowrank"] = list(parts)
    row = PackedTensor(name, shape, W.shape, stored.format, stored.nbytes, nbytes,
                       None if parts else 1 - stored.nnz / W.size)
    return stored, row, rec


def _record(st: _Settings, records: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "layout": st.layout, "tensors": records,
                       "settings": st.describe()})


def _write(path: str | os.PathLike, results: Any, st: _Settings,
           model: list[dict[str, Any]] | None, total: int, show: bool,
           metadata: Mapping[str, str] | None = None) -> list[PackedTensor]:
    """Write (name, stored, row, record) results, in order, to one file."""
    rows, records = [], {}
    with _writer(path) as out:
        out.metadata.update(metadata or {})
        for i, (name, stored, row, rec) in enumerate(results):
            parts = getattr(stored, "parts", None)  # a low-rank layer: one entry per part
            if parts is not None:
                from .tune.lowrank import part_name

                for part, enc in parts.items():
                    out.add(part_name(name, part), enc)
            else:
                out.add(name, stored)
            rows.append(row)
            if rec is not None:
                records[name] = rec
            if show:
                progress(i + 1, total, name[-40:])
        out.metadata[META_KEY] = _record(st, records)
        if model is not None:
            out.metadata["sparsecodec.model"] = json.dumps(model)
    return rows


def _serial(source: TensorSource, names: list[str], st: _Settings) -> Any:
    for name in names:
        yield (name, *_pack_tensor(source, name, st))


def _limit_threads(threads: int) -> None:
    """Numba threads for this worker: the cores shared among the workers, not all of them."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def worker_kind() -> str:
    """"threads" when numba's threading layer lets parallel kernels run from several threads at
    once (omp, tbb), else "processes" (workqueue aborts on concurrent launches).

    Threads are the faster choice where they are safe: two threads packed a 0.6 GB checkpoint
    in 6.2 s, two spawned processes in 7.9 s, serial in 11.1 s (2 cores). numpy releases the
    GIL in the reading, transposing, pruning and comparisons between the kernels, and threads
    pay no process start-up or pickling. ``SPARSECODEC_WORKERS=processes`` (or ``threads``)
    forces a kind: processes isolate each worker's memory, so one dying does not take the
    others down."""
    forced = os.environ.get("SPARSECODEC_WORKERS")
    if forced in ("threads", "processes"):
        return forced if forced == "processes" or _concurrent_layer() else "processes"
    return "threads" if _concurrent_layer() else "processes"


def _concurrent_layer() -> bool:
    """True when numba's threading layer runs parallel kernels from several threads at once."""
    import numba

    from .coding.bits import pack as pack_bits
    from .coding.bits import unpack as unpack_bits

    unpack_bits(pack_bits(np.arange(4), 2), 2, 4)  # a parallel kernel: the layer is chosen then
    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:  # no parallel kernel has run yet in this process
        return False


def _pool(workers: int) -> Any:
    """Threads where numba allows concurrent parallel kernels (``worker_kind``), else a process
    pool whose workers are spawned, not forked: numba's OpenMP threads do not survive a
    fork."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if worker_kind() == "threads":
        return ThreadPoolExecutor(workers)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _task(args: tuple[TensorSource, str, _Settings, int]) -> tuple:
    source, name, st, threads = args
    _limit_threads(threads)
    return (name, *_pack_tensor(source, name, st))


def _pooled(source: TensorSource, names: list[str], st: _Settings, workers: int) -> Any:
    """Results in input order from a process pool; each worker reads its own tensors."""
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    with _pool(workers) as pool:
        futures = [pool.submit(_task, (source.subset([n]), n, st, threads)) for n in names]
        for fut in futures:
            try:
                yield fut.result()
            except BrokenProcessPool as exc:
                lost = [n for n, f in zip(names, futures, strict=True)
                        if f.cancelled() or f.exception() is not None]
                shown = ", ".join(repr(n) for n in lost[:6]) + (" ..." if len(lost) > 6 else "")
                raise PackError(f"a worker process died (out of memory?) while these tensors "
                                f"were unfinished: {shown}") from exc
            except PackError:
                for f in futures:
                    f.cancel()
                raise


# ---------------------------------------------------------------------------------- shards

def plan_shards(source: TensorSource, shard_size: int) -> list[list[str]]:
    """Consecutive tensors grouped so that each group's *input* bytes stay within
    ``shard_size`` (a larger tensor gets a shard of its own). Planned from the input, so every
    way of running (serial, workers, Dask) writes the same shards."""
    shards: list[list[str]] = [[]]
    used = 0
    for name in source:
        size = source.nbytes(name)
        if shards[-1] and used + size > shard_size:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += size
    return shards


def shard_paths(path: str | os.PathLike, count: int) -> list[Path]:
    """``model-00001-of-00003.spc`` ... next to ``model.spc``."""
    p = Path(path)
    return [p.with_name(f"{p.stem}-{i + 1:05d}-of-{count:05d}{p.suffix}") for i in range(count)]


def _shard_done(path: Path, names: list[str], st: _Settings) -> bool:
    """True when ``path`` is a finished shard of these tensors packed with these settings."""
    if not path.exists():
        return False
    try:
        with open_file(path, verify=False) as f:
            info = json.loads(f.metadata.get(META_KEY, "{}"))
            return list(f) == names and info.get("settings") == st.describe()
    except (SparseCodecError, ValueError, OSError):
        return False


def _pack_shard(args: tuple[TensorSource, list[str], str, _Settings, int]
                ) -> list[PackedTensor]:
    """One shard: its tensors encoded into a container (written under a temporary name and
    renamed when complete). Runs in the caller, a pool worker or a Dask worker."""
    source, names, path, st, threads = args
    _limit_threads(threads)
    return _write(path, _serial(source, names, st), st, None, len(names), False)


def _write_index(path: str | os.PathLike, shards: list[list[str]], files: list[Path],
                 st: _Settings, model: list[dict[str, Any]] | None) -> Path:
    """The index (safetensors' convention: ``weight_map`` from tensor to shard file) with the
    pack record of every tensor, written under a temporary name and renamed."""
    records: dict[str, Any] = {}
    for file in files:
        with open_file(file, verify=False) as f:
            records.update(json.loads(f.metadata[META_KEY])["tensors"])
    metadata = {META_KEY: _record(st, records)}
    if model is not None:
        metadata["sparsecodec.model"] = json.dumps(model)
    index = {"format": "sparsecodec-index", "version": 1, "metadata": metadata,
             "weight_map": {n: f.name for names, f in zip(shards, files, strict=True)
                            for n in names}}
    out = Path(str(path) + INDEX_SUFFIX)
    with atomic_output(out) as fh:
        fh.write(json.dumps(index, indent=1).encode("utf-8"))
    return out


def _client(dask: Any) -> tuple[Any, bool]:
    """The Dask client to use, and whether it was made here (from an address) to be closed."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise PackError("--dask needs dask.distributed: python -m pip install "
                        "'sparsecodec[dask]'") from exc
    return (dask, False) if isinstance(dask, Client) else (Client(dask), True)


def _run_shards(source: TensorSource, shards: list[list[str]], files: list[Path],
                st: _Settings, workers: int, dask: Any, show: bool) -> list[PackedTensor]:
    todo = [i for i, names in enumerate(shards) if not _shard_done(files[i], names, st)]
    rows: dict[int, list[PackedTensor]] = {}
    for i in set(range(len(shards))) - set(todo):  # resumed: report from the finished file
        with open_file(files[i]) as f:
            rows[i] = [_resumed(n, f[n]) for n in f]
    cores = os.cpu_count() or 1
    if dask is not None:
        client, ours = _client(dask)
        try:
            nworkers = max(1, len(client.scheduler_info()["workers"]))
            jobs = [(source.subset(shards[i]), shards[i], str(files[i]), st,
                     max(1, cores // nworkers)) for i in todo]
            futures = client.map(_pack_shard, jobs, pure=False)
            for done, (i, fut) in enumerate(zip(todo, futures, strict=True)):
                try:
                    rows[i] = fut.result()
                except PackError:
                    client.cancel(futures)
                    raise
                except Exception as exc:  # a worker died, or the cluster went away
                    client.cancel(futures)
                    raise PackError(f"shard {files[i].name} (tensors {shards[i][0]!r}...): "
                                    f"{type(exc).__name__}: {exc}") from exc
                if show:
                    progress(done + 1, len(todo), files[i].name)
        finally:
            if ours:  # a client made here from an address is closed here, or it lingers
                client.close()
    elif workers > 1 and len(todo) > 1:
        from concurrent.futures.process import BrokenProcessPool

        with _pool(workers) as pool:
            futures = [pool.submit(_pack_shard, (source.subset(shards[i]), shards[i],
                                                 str(files[i]), st, max(1, cores // workers)))
                       for i in todo]
            for done, (i, fut) in enumerate(zip(todo, futures, strict=True)):
                try:
                    rows[i] = fut.result()
                except BaseException as exc:
                    for f in futures:
                        f.cancel()
                    if isinstance(exc, BrokenProcessPool):
                        raise PackError(f"shard {files[i].name} (tensors {shards[i][0]!r}...): "
                                        "a worker process died (out of memory?)") from exc
                    raise
                if show:
                    progress(done + 1, len(todo), files[i].name)
    else:
        for done, i in enumerate(todo):
            rows[i] = _write(files[i], _pooled(source, shards[i], st, workers) if workers > 1
                             else _serial(source, shards[i], st), st, None, len(shards[i]),
                             False)
            if show:
                progress(done + 1, len(todo), files[i].name)
    return [r for i in range(len(shards)) for r in rows[i]]


def _resumed(name: str, t: Any) -> PackedTensor:
    """The report line of a tensor found in a finished shard (input sizes are not known)."""
    if isinstance(t, Encoded):
        return PackedTensor(name, t.shape, t.shape, t.format, t.nbytes, 0)
    a = np.asarray(t)
    return PackedTensor(name, a.shape, None, "array", a.nbytes, a.nbytes)


def pack(tensors: Mapping[str, Any] | str | os.PathLike, path: str | os.PathLike, *,
         prune: float | None = None, quantize: str | None = None, format: str = "auto",
         layers: str | None = None, layout: str = "auto", show_progress: bool = False,
         model: list[dict[str, Any]] | str | os.PathLike | None = None,
         shard_size: int | None = None, workers: int = 1, dask: Any = None,
         max_bytes: Budget = "auto", objective: str = "size", max_error: float | None = None,
         bits: float | None = None, plan: Any = None,
         fold_batchnorm: bool = False) -> list[PackedTensor]:
    """Write ``tensors`` to the container ``path``; see the module docstring.

    ``tensors`` is a mapping of arrays or the path of a model file. Files are read one tensor
    at a time (``sparsecodec.sources``), so memory holds one tensor and its encoding, whatever
    the size of the model. ``quantize`` is a spec like ``"kmeans:32"`` or ``"pq:d=8,k=256"``;
    ``layers`` a regex on tensor names (default: every float tensor of 2 or more dimensions);
    ``model`` a layer list that ``runtime.load_model`` will run (stored as metadata), or the
    path of a JSON file holding one (``pack --model``); its tensor names are checked first.

    ``shard_size`` (input bytes per shard) writes shards ``path``-00001-of-N plus the index
    ``path.index.json``, which ``load``, ``open_file`` and ``unpack`` accept; finished shards
    are kept and skipped when the same command runs again. ``workers`` encodes in that many
    processes; ``dask`` (a ``distributed.Client`` or a scheduler address) maps the shards over
    a Dask cluster whose workers read the input and write their shards themselves. Every way
    writes the same bytes. ``max_bytes`` is the decode budget of compressed inputs (``.npz``
    members, chunked HDF5 datasets). Returns one report line per tensor. Raises
    :class:`PackError` naming the tensor that failed (nothing is left at ``path``),
    :class:`FormatError` when no tensor is a weight matrix. ``objective="speed"`` makes
    ``auto`` choose each tensor's fastest format for ``x @ W`` (``sparsecodec.encode``)
    instead of its smallest. ``max_error`` (a relative error) or ``bits`` (bits per weight)
    instead of ``quantize``: each weight matrix gets ``sc.compress``'s smallest encoding
    within that error, or its least error within that size. ``plan``: a
    ``sparsecodec.tune`` allocation (or ``{name: encoded matrix or LowRank}``) whose choices
    are stored for those tensors as they are (the others are packed with the settings);
    only serially, in one file. ``fold_batchnorm``: with ``model``, every batchnorm layer
    that directly follows a linear or conv2d layer is folded into it before quantization
    (``runtime.fold_batchnorm``; the tensors are read whole for this)."""
    quant = parse_quantizer(quantize)
    labels = None
    if plan is not None and hasattr(plan, "stored"):  # an Allocation
        labels = {n: c.setting.label for n, c in plan.choices.items()}
        plan = plan.stored()
    if plan is not None and (shard_size is not None or dask is not None or workers > 1):
        raise PackError("a plan is packed serially into one file (no shards, workers, dask)")
    target = _target(max_error, bits, quantize)
    if objective not in OBJECTIVES:
        raise PackError(f"objective must be one of {OBJECTIVES}, found {objective!r}")
    if layout not in LAYOUT_CHOICES:
        raise OptionError(f"layout must be one of {LAYOUT_CHOICES}, got {layout!r}")
    if format != "auto":
        get_format(format)  # an unknown name is refused before any tensor is read
    if layers is not None:
        re.compile(layers)
    if not isinstance(workers, int) or workers < 1:
        raise PackError(f"workers must be a positive integer, found {workers!r}")
    st = _Settings(prune, quant, format, layout, layers, objective, target,
                   dict(plan) if plan is not None else None, labels)
    source = open_source(tensors, max_bytes)
    names = list(source)
    if not any(st.is_weight(n, *source.info(n)) for n in names):
        seen = ", ".join(f"{n} {source.info(n)[1]} {source.info(n)[0]}" for n in names[:4])
        raise FormatError("no weight matrix to pack (no float tensor of 2+ dimensions"
                          f"{' matching ' + repr(layers) if layers else ''}; read "
                          f"{len(names)} tensors{': ' + seen if seen else ''}"
                          f"{', ...' if len(names) > 4 else ''})")
    if model is not None:
        from .runtime.model import check_spec, read_spec

        model = (read_spec(model, names) if isinstance(model, (str, os.PathLike))
                 else check_spec(model, names, "model"))
    if fold_batchnorm:
        if model is None:
            raise OptionError("fold_batchnorm needs the model description (model=)")
        from .runtime.model import fold_batchnorm as fold

        weights = [n for n in names if st.is_weight(n, *source.info(n))]
        kind = layout if layout != "auto" else (source.layout(weights[0]) if weights
                                                 else "as-is")
        model, folded = fold(model, {n: source[n] for n in names},
                             "torch" if kind == "torch" else "matrix")
        from .adapters.source import ArraySource

        source = ArraySource(folded, {n: source.layout(n) for n in folded})
        names = list(source)
    if shard_size is None and dask is None:
        results = (_pooled(source, names, st, workers) if workers > 1
                   else _serial(source, names, st))
        return _write(path, results, st, model, len(names), show_progress)
    if is_hdf5_name(path):
        raise PackError("sharded output is written as .spc containers; name the output .spc")
    shards = plan_shards(source, shard_size if shard_size is not None else DEFAULT_SHARD)
    files = shard_paths(path, len(shards))
    rows = _run_shards(source, shards, files, st, workers, dask, show_progress)
    _write_index(path, shards, files, st, model)
    return rows


def pack_encoded(path: str | os.PathLike, tensors: Mapping[str, Any],
                 encoded: Mapping[str, tuple[Encoded, tuple[int, ...]]], *,
                 layout: str = "torch", metadata: Mapping[str, str] | None = None,
                 model: list[dict[str, Any]] | None = None,
                 show_progress: bool = False) -> list[PackedTensor]:
    """Write weight matrices that are already encoded, ``encoded``: name -> (the encoded
    (inputs, outputs) matrix, the tensor's own shape in ``layout``), next to the other
    ``tensors`` (arrays, packed losslessly as ``pack`` packs them without a quantizer), with
    the records ``unpack`` needs to give every tensor back in its shape. ``metadata``: extra
    string entries (``sparsecodec.torch`` writes its module list there)."""
    if layout not in LAYOUTS:
        raise OptionError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    st = _Settings(None, None, "auto", layout, None)
    source = open_source(dict(tensors))

    def results() -> Any:
        for name, (enc, shape) in encoded.items():
            matrix, transform = matrix_shape(tuple(shape), layout)
            if matrix != enc.shape:
                raise PackError(f"tensor {name!r}: a {shape} tensor is a {matrix} matrix in "
                                f"layout {layout!r}, the encoded one is {enc.shape}")
            count = int(np.prod(shape))
            row = PackedTensor(name, tuple(shape), enc.shape, enc.format, enc.nbytes,
                               count * enc.dtype.itemsize, 1 - enc.nnz / max(count, 1))
            yield name, enc, row, {"shape": list(shape), "transform": transform}
        yield from _serial(source, list(source), st)

    return _write(path, results(), st, model, len(encoded) + len(tensors), show_progress,
                  metadata)


DEFAULT_SHARD = 2 << 30  # input bytes per shard when Dask is asked for without a size


TRANSFORMS = ("none", "T", "oihw", "hwio", "flatten")


def pack_records(metadata: Mapping[str, str], where: str) -> dict[str, dict[str, Any]]:
    """The per-tensor records of a file's ``sparsecodec.pack`` metadata (empty without one),
    each checked: ``{"shape": [...], "transform": one of TRANSFORMS}`` and optionally
    ``"note"``, a string saying what was done instead of the settings (a quantizer's fallback),
    and ``"lowrank"``, the parts (``["U", "V"]`` or ``["U", "V", "S"]``) of a low-rank layer
    stored as ``NAME.lowrank.U`` etc. Raises :class:`FormatError` naming the tensor and field
    for anything else."""
    text = metadata.get(META_KEY)
    if not text:
        return {}
    info = parse_json(text, f"{where}: metadata {META_KEY}")
    if not isinstance(info, dict) or not isinstance(info.get("tensors", {}), dict):
        raise FormatError(f"{where}: metadata {META_KEY}: 'tensors' must be an object")
    records = info.get("tensors", {})
    for name, r in records.items():
        at = f"{where}: metadata {META_KEY}: tensor {name[:80]!r}"
        if not isinstance(r, dict) or set(r) - {"note", "lowrank"} != {"shape", "transform"} \
                or not isinstance(r.get("note", ""), str):
            raise FormatError(f"{at}: a record holds exactly shape and transform, and "
                              "optionally a note (a string) and lowrank parts")
        if "lowrank" in r and (not isinstance(r["lowrank"], list) or
                               r["lowrank"] not in (["U", "V"], ["U", "V", "S"])):
            raise FormatError(f"{at}: lowrank must be [\"U\", \"V\"] or [\"U\", \"V\", "
                              f"\"S\"], found {str(r['lowrank'])[:40]}")
        if r["transform"] not in TRANSFORMS:
            raise FormatError(f"{at}: unknown transform {str(r['transform'])[:40]!r}")
        check_shape(f"{at}: shape", r["shape"])
    return records


def _low_rank(f: Any, name: str, parts: list[str], where: str) -> Any:
    """The low-rank layer ``name`` of an open file, its ``parts`` checked by pack_records."""
    from .tune.lowrank import assemble

    try:
        return assemble(f, name, parts)
    except (KeyError, ShapeError) as exc:
        raise FormatError(f"{where}: tensor {name!r}: low-rank parts missing or not "
                          f"chaining ({exc})") from None


def unpack(path: str | os.PathLike, max_bytes: Budget = "auto") -> dict[str, np.ndarray]:
    """Every tensor of a packed file in its original shape and layout (weights decoded; a
    low-rank layer as the product of its parts). ``max_bytes``: the decode budget of each
    matrix (``io.open_file``)."""
    out: dict[str, np.ndarray] = {}
    with open_file(path, max_bytes=max_bytes) as f:
        records = pack_records(f.metadata, str(path))
        from .tune.lowrank import part_name

        parts_of = {part_name(n, p) for n, r in records.items() if "lowrank" in r
                    for p in r["lowrank"]}
        names = [n for n in f if n not in parts_of]
        names += [n for n, r in records.items() if "lowrank" in r]
        for name in names:
            r = records.get(name)
            x = (_low_rank(f, name, r["lowrank"], str(path)) if r and "lowrank" in r
                 else f[name])
            out[name] = restore(x, r, name, str(path))
    return out


def restore(x: Any, record: dict[str, Any] | None, name: str, where: str) -> np.ndarray:
    """A stored tensor as the framework held it: an encoded matrix (or low-rank layer)
    decoded and given back its shape and layout by its pack ``record`` (checked by
    :func:`pack_records`; None: the matrix as it is), an array copied out of the file."""
    from .tune.lowrank import LowRank

    if not isinstance(x, (Encoded, LowRank)):
        return np.array(x)
    W = x.decode()
    if record is None:
        return W
    try:
        return from_matrix(W, record["transform"], tuple(record["shape"]))
    except (ValueError, TypeError) as exc:  # a shape that does not fit the matrix
        raise FormatError(f"{where}: tensor {name!r}: the pack record's shape "
                          f"{record['shape']} and transform {record['transform']!r} do not fit "
                          f"its {W.shape[0]}x{W.shape[1]} matrix ({exc})") from None
