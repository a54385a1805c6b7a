"""atheris fuzz targets for the loader and every decoder. Not part of the normal test run.

    pip install atheris
    python tests/fuzz/fuzz_targets.py container  -max_total_time=300 -rss_limit_mb=4096
    python tests/fuzz/fuzz_targets.py components -max_total_time=300 -rss_limit_mb=4096

``container`` feeds mutated files (seeded with the golden vectors) to ``sc.load`` and then
decodes every tensor and multiplies it by a vector. ``components`` builds a valid small
encoding in a format chosen by the input, overwrites one of its components with the input's
bytes and rebuilds it. ``hdf5`` feeds mutated sparsecodec HDF5 files to ``sc.load``;
``index`` feeds mutated sharded-pack indexes (beside two valid shards); ``safetensors`` and
``npz`` feed mutated inputs to the tensor sources ``pack`` reads. The only exception allowed
out is ``sparsecodec.FormatError``; anything else (another exception, a crash, a hang past
libFuzzer's timeout, memory past ``-rss_limit_mb``) is a finding. ``tests/test_fuzz.py`` runs
each target briefly when ``SPARSECODEC_FUZZ=1``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris
import numpy as np

import sparsecodec as sc  # imported plainly: numba cannot compile instrumented bytecode
from sparsecodec.formats.base import registry

VECTORS = Path(__file__).resolve().parents[2] / "formats" / "vectors"
_TMP = Path(tempfile.mkdtemp(prefix="sparsecodec-fuzz-"))
_FILE = _TMP / "input.spc"
_W = ((np.arange(96, dtype=np.float32).reshape(12, 8) % 7 - 3)
      * (np.arange(96).reshape(12, 8) % 3 == 0))
# every format, plus sham_ans with all its contexts and the row order (its default on this
# matrix buys none), so that the context tables and classes are fuzzed too
_VARIANTS = {f: (f, {"block_symbols": 8} if f in ("ham", "sham") else {}) for f in registry()}
_VARIANTS["sham_ans+contexts"] = ("sham_ans", {"order": "rows", "gap_model": "prev+line+rem",
                                               "value_model": "sig+pos+line",
                                               "block_symbols": 16})
_FORMATS = list(_VARIANTS)
_ENCODED = {v: sc.encode(_W, format=f, **opts) for v, (f, opts) in _VARIANTS.items()}


def _use(t) -> None:
    if isinstance(t, np.ndarray):
        np.asarray(t).sum()
        return
    t.decode()
    assert 0 <= t.nnz <= t.shape[0] * t.shape[1]
    with np.errstate(all="ignore"):
        np.ones(t.shape[0]) @ t


def _reseal(data: bytes) -> bytes:
    """The input with its header CRC recomputed, so mutations reach the header's validation
    instead of stopping at the checksum."""
    import struct
    import zlib

    if len(data) < 24 or data[8:12] != b"\2\0\0\0":
        return data
    hlen = struct.unpack_from("<Q", data, 16)[0]
    if hlen > len(data) - 24:
        return data
    return data[:12] + struct.pack("<I", zlib.crc32(data[24:24 + hlen])) + data[16:]


def container(data: bytes) -> None:
    _load_and_use(_FILE, _reseal(data) if len(data) % 3 else data, verify=len(data) % 2 == 0)


def components(data: bytes) -> None:
    if len(data) < 2:
        return
    fmt = _FORMATS[data[0] % len(_FORMATS)]
    enc = _ENCODED[fmt]
    comps = {k: v.copy() for k, v in enc.components().items()}
    name = sorted(comps)[data[1] % len(comps)]
    dtype = comps[name].dtype
    raw = data[2:]
    raw = raw[: len(raw) - len(raw) % dtype.itemsize]
    comps[name] = np.frombuffer(raw, dtype).copy()
    if enc.components()[name].ndim == 2 and comps[name].size >= _W.shape[1]:
        comps[name] = comps[name][: comps[name].size // _W.shape[1] * _W.shape[1]].reshape(
            -1, _W.shape[1])  # dense values keep a 2-D shape
    try:
        _use(type(enc).from_components(dict(enc.meta), comps))
    except sc.FormatError:
        pass


def _load_and_use(path: Path, data: bytes, verify: bool = True) -> None:
    """Write ``data`` to ``path``, load it, and decode and multiply every tensor."""
    path.write_bytes(data)
    try:
        for t in sc.load(path, verify=verify).values():
            _use(t)
    except sc.FormatError:
        pass


def hdf5(data: bytes) -> None:
    _load_and_use(_TMP / "input.h5", data)


def index(data: bytes) -> None:
    _load_and_use(_TMP / "pack.spc.index.json", data)


def _source(suffix: str, data: bytes) -> None:
    from sparsecodec.sources import open_source

    path = _TMP / f"input{suffix}"
    path.write_bytes(data)
    try:
        src = open_source(path)
        for name in src:
            src.info(name)
            np.asarray(src[name]).sum()
    except sc.FormatError:
        pass


def safetensors(data: bytes) -> None:
    _source(".safetensors", data)


def npz(data: bytes) -> None:
    _source(".npz", data)


TARGETS = {"container": container, "components": components, "hdf5": hdf5, "index": index,
           "safetensors": safetensors, "npz": npz}


def seeds(target: str) -> Path:
    """A corpus folder with valid inputs to start from."""
    corpus = _TMP / f"corpus-{target}"
    corpus.mkdir(exist_ok=True)
    if target == "container":
        for p in VECTORS.glob("*.spc"):
            (corpus / p.name).write_bytes(p.read_bytes())
    elif target == "hdf5":
        for f in ("sham", "csr", "pq"):
            sc.save(corpus / f"{f}.h5", {"w": _ENCODED[f], "b": np.ones(3)})
    elif target == "index":
        from sparsecodec.pack import pack

        pack({"a": _W, "b": _W * 2}, _TMP / "pack.spc", shard_size=1)
        (corpus / "index.json").write_bytes((_TMP / "pack.spc.index.json").read_bytes())
    elif target == "safetensors":
        import safetensors.numpy as stn

        (corpus / "m.safetensors").write_bytes(stn.save({"w": _W, "b": np.ones(3, np.int8)}))
    elif target == "npz":
        np.savez(corpus / "plain.npz", w=_W, b=np.ones(3, np.int8))
        np.savez_compressed(corpus / "zipped.npz", w=_W, f=np.asfortranarray(_W))
    else:
        for i, f in enumerate(_FORMATS):
            for j, (name, a) in enumerate(sorted(_ENCODED[f].components().items())):
                (corpus / f"{f}-{name}").write_bytes(bytes([i, j]) + a.tobytes())
    return corpus


def warm_up() -> None:
    """Compile every kernel for every dtype before instrumenting (numba compiles from the
    plain bytecode; afterwards the compiled code is used as it is)."""
    for dtype in (np.float16, np.float32, np.float64):
        W = _W.astype(dtype)
        for f, opts in _VARIANTS.values():
            enc = sc.encode(W, format=f, **opts)
            _use(enc)
            np.ones((2, W.shape[0])) @ enc
    for p in VECTORS.glob("*.spc"):
        for t in sc.load(p).values():
            _use(t)
            sc.save(_TMP / "warm.h5", {"w": t})
            sc.load(_TMP / "warm.h5")


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "container"
    if target not in TARGETS:
        sys.exit(f"usage: fuzz_targets.py {{{','.join(TARGETS)}}} [libFuzzer flags]")
    args = [sys.argv[0], *sys.argv[2:], str(seeds(target))]
    warm_up()
    atheris.instrument_all()
    atheris.Setup(args, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
