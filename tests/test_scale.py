"""Packing at scale: lazy sources, sharded output and its index, worker processes and a Dask
LocalCluster writing the same bytes as a serial run, failures that leave nothing behind, and
resuming."""

import json
import os

import numpy as np
import pytest

import sparsecodec as sc
import sparsecodec.sources as sparsecodec_sources
from sparsecodec.cli import main, parse_size
from sparsecodec.io import open_file
from sparsecodec.pack import PackError, pack, plan_shards, unpack
from sparsecodec.sources import (
    HDF5Source,
    NpzSource,
    SafetensorsIndexSource,
    SafetensorsSource,
    open_source,
)

stn = pytest.importorskip("safetensors.numpy")
KW = {"prune": 80, "quantize": "kmeans:8", "layout": "torch"}


def model(n=6, seed=0):
    rng = np.random.default_rng(seed)
    m = {f"layer{i}.weight": rng.standard_normal((64 + 8 * i, 96)).astype(np.float32)
         for i in range(n)}
    m["layer0.bias"] = rng.standard_normal(64).astype(np.float32)
    m["steps"] = np.arange(3, dtype=np.int64)
    return m


def sharded_checkpoint(folder, m, per_shard=3):
    """A Hugging Face style sharded safetensors checkpoint and its index."""
    names = list(m)
    groups = [names[i:i + per_shard] for i in range(0, len(names), per_shard)]
    weight_map = {}
    for i, g in enumerate(groups):
        file = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        stn.save_file({n: m[n] for n in g}, str(folder / file))
        weight_map.update(dict.fromkeys(g, file))
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return index


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


class _Counted:
    """A file object that adds the bytes read through it to ``read``."""

    def __init__(self, fh, read):
        self._fh, self._read = fh, read

    def read(self, *a):
        out = self._fh.read(*a)
        self._read.append(len(out))
        return out

    def readinto(self, buf):
        n = self._fh.readinto(buf)
        self._read.append(n or 0)
        return n

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def counting_reads(monkeypatch):
    """Count every byte the sources read (they all open files through ``open_regular``)."""
    import sparsecodec.adapters.npz as npz
    import sparsecodec.adapters.safetensors_file as st
    import sparsecodec.io.hdf5 as h5
    from sparsecodec.io.files import open_regular

    read: list[int] = []
    opener = lambda *a, **k: _Counted(open_regular(*a, **k), read)  # noqa: E731
    for module in (npz, st, h5):
        monkeypatch.setattr(module, "open_regular", opener)
    return read


def test_sources_read_headers_without_data(tmp_path, monkeypatch):
    m = model()
    stn.save_file(m, str(tmp_path / "m.safetensors"))
    np.savez(tmp_path / "m.npz", **m)
    index = sharded_checkpoint(tmp_path, m)
    import h5py

    with h5py.File(tmp_path / "m.h5", "w") as f:
        for n, a in m.items():
            f[n] = a
    data = sum(a.nbytes for a in m.values())
    for src, cls in ((tmp_path / "m.safetensors", SafetensorsSource),
                     (tmp_path / "m.npz", NpzSource), (index, SafetensorsIndexSource),
                     (tmp_path / "m.h5", HDF5Source)):
        read = counting_reads(monkeypatch)
        s = open_source(src)
        assert isinstance(s, cls) and sorted(s) == sorted(m)
        for n, a in m.items():
            assert s.info(n) == (a.shape, a.dtype)
            assert s.nbytes(n) == a.nbytes
        # headers only: zipfile reads members' starts in 4 KiB buffers, the rest far less
        assert sum(read) < 8192 * (len(m) + 1) < data, (cls, sum(read), data)
        for n, a in m.items():
            assert np.array_equal(s[n], a)
        if cls in (NpzSource, HDF5Source):  # the counter sees their data reads too
            assert sum(read) >= data  # (safetensors reads with np.fromfile, past Python)
    with pytest.raises(FileNotFoundError):
        open_source(tmp_path / "missing.safetensors")


def test_plan_follows_input_bytes():
    m = model()
    plan = plan_shards(open_source(m), 2 * m["layer1.weight"].nbytes)
    assert [n for g in plan for n in g] == list(m)  # order kept, nothing lost
    src = open_source(m)
    for g in plan:
        assert len(g) == 1 or sum(src.nbytes(n) for n in g) <= 2 * m["layer1.weight"].nbytes


def test_sharded_pack_from_a_sharded_checkpoint(tmp_path):
    m = model()
    index = sharded_checkpoint(tmp_path, m)
    out = tmp_path / "out"
    out.mkdir()
    rows = pack(str(index), out / "m.spc", shard_size=40_000, **KW)
    assert len(rows) == len(m)
    made = sorted(p.name for p in out.iterdir())
    assert "m.spc.index.json" in made and len(made) >= 3
    assert not any(p.startswith(".") for p in made)  # no temporary left
    one = tmp_path / "one.spc"
    pack(m, one, **KW)
    a, b = unpack(out / "m.spc"), unpack(one)  # the index is found from the plain name
    assert set(a) == set(m) and all(np.array_equal(a[n], b[n]) for n in m)
    loaded = sc.load(out / "m.spc.index.json")
    assert set(loaded) == set(m)
    with open_file(out / "m.spc") as f:
        assert json.loads(f.metadata["sparsecodec.pack"])["tensors"].keys() == {
            n for n in m if n.endswith(".weight")}


@pytest.mark.parametrize("kind", ["threads", "processes"])
def test_workers_and_dask_write_the_same_bytes_as_serial(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("SPARSECODEC_WORKERS", kind)
    m = model(8)
    stn.save_file(m, str(tmp_path / "m.safetensors"))
    src = str(tmp_path / "m.safetensors")
    dirs = {k: tmp_path / k for k in ("serial", "workers", "dask", "single1", "single2")}
    for d in dirs.values():
        d.mkdir()
    pack(src, dirs["serial"] / "m.spc", shard_size=50_000, **KW)
    pack(src, dirs["workers"] / "m.spc", shard_size=50_000, workers=2, **KW)
    assert len(files(dirs["serial"])) > 3
    assert files(dirs["serial"]) == files(dirs["workers"])
    pack(src, dirs["single1"] / "m.spc", **KW)
    pack(src, dirs["single2"] / "m.spc", workers=2, **KW)
    assert files(dirs["single1"]) == files(dirs["single2"])
    distributed = pytest.importorskip("distributed")  # only Dask's part needs it
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pack(src, dirs["dask"] / "m.spc", shard_size=50_000, dask=client, **KW)
    assert files(dirs["serial"]) == files(dirs["dask"])


def test_a_failing_tensor_is_named_and_leaves_nothing(tmp_path):
    m = model()
    m["layer3.weight"][5, 5] = np.nan  # k-means refuses NaN
    with pytest.raises(PackError, match="layer3.weight"):
        pack(m, tmp_path / "bad.spc", **KW)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PackError, match="layer3.weight"):
        pack(m, tmp_path / "bad.spc", shard_size=30_000, **KW)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "bad.spc.index.json" not in left and not any(p.startswith(".") for p in left)
    # the shards before the failure are complete; a corrected rerun keeps them
    done = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert done
    m["layer3.weight"][5, 5] = 0.0
    pack(m, tmp_path / "bad.spc", shard_size=30_000, **KW)
    for name, t in done.items():
        assert (tmp_path / name).stat().st_mtime_ns == t  # skipped, not rewritten
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    pack(m, fresh / "bad.spc", shard_size=30_000, **KW)
    assert files(tmp_path) == files(fresh)


def test_resume_redoes_a_shard_packed_with_other_settings(tmp_path):
    m = model()
    pack(m, tmp_path / "m.spc", shard_size=30_000, **KW)
    first = files(tmp_path)
    pack(m, tmp_path / "m.spc", shard_size=30_000, **{**KW, "quantize": "kmeans:4"})
    second = files(tmp_path)
    assert first.keys() == second.keys()
    assert all(first[n] != second[n] for n in first if n.endswith(".spc"))


def test_cli_shards_workers_info_verify(tmp_path, capsys):
    m = model()
    stn.save_file(m, str(tmp_path / "m.safetensors"))
    out = tmp_path / "o.spc"
    assert main(["pack", str(tmp_path / "m.safetensors"), "-o", str(out), "--prune", "80",
                 "--quantize", "kmeans:8", "--shard-size", "40kB", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "layer5.weight" in text and "file" in text
    assert main(["info", str(out)]) == 0
    assert "shards and an index" in capsys.readouterr().out
    assert main(["verify", str(out) + ".index.json"]) == 0
    assert main(["unpack", str(out), "-o", str(tmp_path / "back.npz")]) == 0
    back = np.load(tmp_path / "back.npz")
    assert np.array_equal(back["steps"], m["steps"])
    assert main(["pack", str(tmp_path / "m.safetensors"), "-o", str(out), "--shard-size",
                 "lots"]) == 2
    assert "--shard-size" in capsys.readouterr().err


def test_parse_size():
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("1.5k") == 1500
    assert parse_size("1000") == 1000
    assert parse_size(None) is None
    for bad in ("", "GB", "-1GB", "0"):
        with pytest.raises(ValueError):
            parse_size(bad)


def test_bad_index_is_refused(tmp_path):
    (tmp_path / "x.spc.index.json").write_text(json.dumps(
        {"format": "sparsecodec-index", "version": 1, "metadata": {},
         "weight_map": {"w": "../etc/passwd"}}))
    with pytest.raises(sc.FormatError, match="file name"):
        open_file(tmp_path / "x.spc")
    (tmp_path / "y.spc.index.json").write_text("{")
    with pytest.raises(sc.FormatError):
        open_file(tmp_path / "y.spc.index.json")
    assert os.path.exists(tmp_path / "x.spc.index.json")


def test_safetensors_header_is_checked(tmp_path):
    m = {"w": np.ones((4, 5), np.float32)}
    stn.save_file(m, str(tmp_path / "m.safetensors"))
    raw = (tmp_path / "m.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    for edit in ({"data_offsets": [0, 400]}, {"shape": [5, 5]}, {"dtype": "BOOL"},
                 {"dtype": "C64"}, {"shape": [-4, 5]}):
        h = {**header, "w": {**header["w"], **edit}}
        text = json.dumps(h).encode()
        (tmp_path / "bad.safetensors").write_bytes(len(text).to_bytes(8, "little") + text
                                                   + raw[8 + n:])
        with pytest.raises(sc.FormatError):
            SafetensorsSource(tmp_path / "bad.safetensors")
    (tmp_path / "short.safetensors").write_bytes(raw[:-8])
    with pytest.raises(sc.FormatError):
        SafetensorsSource(tmp_path / "short.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(sc.FormatError):
        SafetensorsSource(tmp_path / "junk.safetensors")


def test_bfloat16_is_read_as_bfloat16_bit_for_bit(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    w = torch.randn(6, 10).to(torch.bfloat16)
    save_file({"w": w}, str(tmp_path / "b.safetensors"))
    src = SafetensorsSource(tmp_path / "b.safetensors")
    shape, dtype = src.info("w")
    assert shape == (6, 10) and dtype.name == "bfloat16" and src.nbytes("w") == 120
    got = src["w"]
    assert got.dtype == dtype
    assert np.array_equal(got.view(np.uint16), w.view(torch.int16).numpy().view(np.uint16))
    assert np.array_equal(got.astype(np.float32), w.float().numpy())


class DyingSource(sparsecodec_sources.ArraySource):
    """Kills the worker process that reads ``layer2.weight`` (as the OOM killer would)."""

    def __getitem__(self, name):
        if name == "layer2.weight" and os.getpid() != self.parent:
            os._exit(9)
        return super().__getitem__(name)

    def subset(self, names):  # keep the dying behaviour in the worker
        return self


def test_a_dying_worker_is_reported_with_the_unfinished_tensors(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSECODEC_WORKERS", "processes")  # a thread cannot die alone
    src = DyingSource(model())
    src.parent = os.getpid()
    with pytest.raises(PackError, match="died.*unfinished.*'layer2.weight'"):
        pack(src, tmp_path / "m.spc", workers=2, **KW)
    assert list(tmp_path.iterdir()) == []


def test_worker_processes_are_sent_only_their_tensors(tmp_path):
    import pickle

    m = model()
    one = open_source(m).subset(["layer1.weight"])
    assert list(one) == ["layer1.weight"]
    assert np.array_equal(one["layer1.weight"], m["layer1.weight"])
    assert len(pickle.dumps(one)) < 1.2 * m["layer1.weight"].nbytes
    stn.save_file(m, str(tmp_path / "m.safetensors"))
    src = open_source(tmp_path / "m.safetensors")
    src["layer1.weight"]
    assert src.subset(["layer1.weight"]) is src  # a file source travels as its path
    assert len(pickle.dumps(src)) < 2000


def test_a_corrupt_npz_member_is_a_format_error(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "x.npz", "w") as z:
        z.writestr("w.npy", b"\x93NUMPY\x01\x00garbage")
    src = NpzSource(tmp_path / "x.npz")
    for read in (lambda: src.info("w"), lambda: src["w"]):
        with pytest.raises(sc.FormatError, match="'w'"):
            read()
    with pytest.raises(sc.FormatError):
        pack(str(tmp_path / "x.npz"), tmp_path / "o.spc")


def test_cli_pack_dask_address(tmp_path, capsys):
    """``pack --dask ADDRESS`` (the scheduler's address, as a user gives it) writes the same
    shards as a serial pack."""
    distributed = pytest.importorskip("distributed")
    m = model(4)
    stn.save_file(m, str(tmp_path / "m.safetensors"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pack(str(tmp_path / "m.safetensors"), tmp_path / "a" / "m.spc", shard_size=40_000,
         **{**KW, "prune": 80.0})  # as the command line parses it (the settings are recorded)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert main(["pack", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "b" / "m.spc"),
                     "--shard-size", "40000", "--dask", cluster.scheduler_address,
                     "--prune", "80", "--quantize", "kmeans:8", "--layout", "torch"]) == 0
        with pytest.raises(ValueError, match="No clients"):  # the client made was closed
            distributed.default_client()
    assert "total:" in capsys.readouterr().out
    assert files(tmp_path / "a") == files(tmp_path / "b") and len(files(tmp_path / "a")) > 2
