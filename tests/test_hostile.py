"""Hostile files and unlucky users: escapes, overwrites, silently wrong loads, crashes and
unbounded cost. Each numbered section is one way a file or a user can hurt the reader; every
case here failed before the reader defended against it. Dangerous cases run in a subprocess
with a timeout and resource limits (address space, file size), so that a hang or a bomb fails
the test, not the machine."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from limits import run
from strategies import same_bits
from test_container import parts, rebuild

import sparsecodec as sc
from sparsecodec import adapters
from sparsecodec.cli import main
from sparsecodec.io import container as ct
from sparsecodec.io import files
from sparsecodec.pack import pack, unpack

W = np.zeros((6, 5), np.float32)
W[[0, 2, 3, 5], [0, 1, 4, 2]] = [0.5, -1.5, 0.5, 2.0]


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def one_line_error(code: int, err: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("sparsecodec: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err


# --------------------------------------------------------------- 1, 12: temporaries


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """Every temporary name tempfile would choose first is a symlink to a victim file, and so
    is the fixed name the old writers used."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    monkeypatch.setattr(tempfile, "_get_candidate_names",
                        lambda: iter(["aaaaaaaa", *(f"b{i:07d}" for i in range(100))]))

    def plant(target: Path) -> list[Path]:
        links = [target.with_name(f".{target.name}.aaaaaaaa{files.SUFFIX}"),
                 target.with_name(f".{target.name}.partial")]
        for link in links:
            link.symlink_to(victim)
        return links

    return victim, plant


def _writers(tmp_path):
    torch = pytest.importorskip("torch")  # noqa: F841
    src = tmp_path / "src.spc"
    sc.save(src, {"w": sc.encode(W, format="sham"), "b": np.ones(3, np.float32)})
    h5 = tmp_path / "template.h5"
    with h5py.File(h5, "w") as f:
        f["w"] = W
    return {
        "container": (tmp_path / "m.spc", lambda p: sc.save(p, {"w": sc.encode(W)})),
        "hdf5": (tmp_path / "m.h5", lambda p: sc.save(p, {"w": sc.encode(W)})),
        "index": (tmp_path / "s.spc.index.json",
                  lambda p: pack({"w": W}, tmp_path / "s.spc", shard_size=1) and None),
        "npz": (tmp_path / "out.npz", lambda p: main(["unpack", str(src), "-o", str(p)])),
        "safetensors": (tmp_path / "out.safetensors",
                        lambda p: main(["unpack", str(src), "-o", str(p)])),
        "pt": (tmp_path / "out.pt", lambda p: main(["unpack", str(src), "-o", str(p)])),
        "keras": (tmp_path / "out.h5", lambda p: adapters.keras_h5.write(p, {"w": W * 2},
                                                                            template=h5)),
    }


@pytest.mark.parametrize("kind", ["container", "hdf5", "index", "npz", "safetensors", "pt",
                                  "keras"])
def test_planted_symlinks_at_temporary_names_are_never_followed(tmp_path, planted, kind):
    victim, plant = planted
    target, write = _writers(tmp_path)[kind]
    links = plant(target)
    assert write(target) in (None, 0)
    assert victim.read_text() == "precious"
    assert target.is_file() and not target.is_symlink()
    assert all(link.is_symlink() for link in links)  # not ours: left alone, not removed
    assert files.leftovers(target) == [links[0]]  # only the planted name remains


def test_a_killed_writer_leaves_a_temporary_the_next_save_removes(tmp_path):
    target = tmp_path / "m.spc"
    out = run("""
        import os, signal, sys
        from sparsecodec.io.files import atomic_output
        with atomic_output(sys.argv[1]) as fh:
            fh.write(b"x" * 100000)
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        """, target)
    assert out.returncode == -signal.SIGKILL
    left = files.leftovers(target)
    assert len(left) == 1 and left[0].stat().st_size == 100000
    sc.save(target, {"w": sc.encode(W)})
    assert files.leftovers(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.spc"]


def test_a_live_writers_temporary_is_not_removed(tmp_path):
    target = tmp_path / "m.spc"
    with files.atomic_output(target) as fh:
        fh.write(b"in progress")
        assert files.clean_leftovers(target) == 0
        assert len(files.leftovers(target)) == 1
    assert target.read_bytes() == b"in progress"
    assert files.leftovers(target) == []


def test_a_killed_container_writer_leaves_nothing(tmp_path):
    out = run("""
        import os, signal, sys, numpy as np, sparsecodec as sc
        w = sc.ContainerWriter(sys.argv[1])
        w.add("big", np.ones(4 << 20, np.float32))
        os.kill(os.getpid(), signal.SIGKILL)
        """, tmp_path / "m.spc")
    assert out.returncode == -signal.SIGKILL
    assert list(tmp_path.iterdir()) == []  # the blobs' temporary file has no name


def test_files_are_written_with_the_usual_permissions(tmp_path):
    sc.save(tmp_path / "m.spc", {"w": sc.encode(W)})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.spc").stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------- 5: concurrent writers


def test_concurrent_writers_each_leave_a_whole_file(tmp_path):
    target = tmp_path / "m.spc"
    writer = """
        import sys, numpy as np, sparsecodec as sc
        value = float(sys.argv[2])
        for i in range(10):
            sc.save(sys.argv[1], {"x": np.full(1 << 20, value, np.float32),
                                  "i": np.array([i])})
        """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(writer), str(target), v],
                              stderr=subprocess.PIPE, text=True) for v in ("1", "2")]
    seen = set()
    while any(p.poll() is None for p in procs):
        try:
            t = sc.load(target)  # whatever is there is whole: every checksum holds
        except FileNotFoundError:
            continue
        x = np.asarray(t["x"])
        assert x.min() == x.max()
        seen.add(float(x[0]))
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    final = sc.load(target)
    assert float(final["x"][0]) in (1.0, 2.0) and int(final["i"][0]) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.spc"]


# --------------------------------------------------------------- 6: read while replaced


@pytest.mark.parametrize("name", ["m.spc", "m.h5"])
def test_an_open_file_is_not_mixed_with_its_replacement(tmp_path, name):
    path, other = tmp_path / name, tmp_path / f"other{Path(name).suffix}"
    sc.save(path, {"a": np.full(1000, 1.0, np.float32), "b": np.full(10, 1, np.int64)})
    sc.save(other, {"a": np.full(1000, 2.0, np.float32), "b": np.full(10, 2, np.int64)})
    with sc.open(path) as f:
        os.replace(other, path)
        assert np.all(f["a"] == 1.0) and np.all(f["b"] == 1)
    with sc.open(path, verify=False) as f:
        assert np.all(f["a"] == 2.0)


# --------------------------------------------------------------- 7: header checksum


def test_every_single_bit_flip_in_the_header_is_caught(tmp_path):
    path = tmp_path / "h.spc"
    sc.save(path, {"w": sc.encode(W, format="csr"), "b": np.ones(3, np.float32)},
            metadata={"m": "x"})
    raw = path.read_bytes()
    hlen = struct.unpack_from("<Q", raw, 16)[0]
    escaped = []
    for byte in range(8, ct.PREAMBLE.size + hlen):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[byte] ^= 1 << bit
            path.write_bytes(bytes(flipped))
            try:
                sc.load(path)
                escaped.append((byte, bit))
            except sc.FormatError:
                pass
    assert escaped == []


def test_version_1_files_are_still_read():
    vectors = Path(__file__).resolve().parent.parent / "formats" / "vectors"
    for name in ("sham", "csr"):
        raw = (vectors / "v1" / f"{name}.spc").read_bytes()
        assert struct.unpack_from("<II", raw, 8) == (1, 0)
        f = sc.open(vectors / "v1" / f"{name}.spc")
        assert len(f) == 6
        for tensor in f:
            assert same_bits(f[tensor].decode(), np.load(vectors / f"{tensor}.npy"))


def test_newer_versions_are_refused_clearly(tmp_path):
    path = tmp_path / "v.spc"
    sc.save(path, {"b": np.ones(3)})
    raw = bytearray(path.read_bytes())
    raw[8:12] = struct.pack("<I", 3)
    path.write_bytes(bytes(raw))
    with pytest.raises(sc.FormatError, match="unsupported version 3"):
        sc.load(path)


# --------------------------------------------------------------- 8: tiling and padding


@pytest.fixture
def two(tmp_path):
    path = tmp_path / "t.spc"
    sc.save(path, {"a": np.arange(5, dtype=np.float32), "b": np.arange(3, dtype=np.int16)})
    return path


def test_a_gap_between_blobs_is_refused(two):
    header, data = parts(two)
    header["tensors"]["b"]["components"]["values"]["offset"] += 64
    header["data_length"] += 64
    rebuild(two, header, data[:64] + b"\0" * 64 + data[64:])
    with pytest.raises(sc.FormatError, match="gap of"):
        sc.load(two)


def test_bytes_after_the_last_blob_are_refused(two):
    header, data = parts(two)
    header["data_length"] += 64
    rebuild(two, header, data + b"\0" * 64)
    with pytest.raises(sc.FormatError, match="follow the last blob"):
        sc.load(two)


def test_nonzero_padding_is_refused(two):
    header, data = parts(two)
    data = bytearray(data)
    data[30] = 7  # between a's 20 bytes and b at 64
    rebuild(two, header, bytes(data))
    with pytest.raises(sc.FormatError, match="padding before its blob"):
        sc.load(two)
    assert np.array_equal(sc.load(two, verify=False)["b"], np.arange(3))  # unchecked: read
    raw = bytearray(two.read_bytes())
    hlen = struct.unpack_from("<Q", raw, 16)[0]
    raw[ct.PREAMBLE.size + hlen] = 1  # the header's own padding
    two.write_bytes(bytes(raw))
    with pytest.raises(sc.FormatError, match="padding after the header"):
        sc.open(two, verify=False)


# --------------------------------------------------------------- 9: decode bombs


def _coo_bomb(path: Path, n: int = 40000, m: int = 40000) -> None:
    """A few hundred bytes claiming an n x m float64 matrix (no nonzeros)."""
    sc.save(path, {"w": sc.encode(np.zeros((4, 4)), format="coo")})
    header, data = parts(path)
    header["tensors"]["w"]["shape"] = [n, m]
    rebuild(path, header, data)


def test_a_tiny_file_cannot_claim_a_huge_matrix(tmp_path, capsys):
    path = tmp_path / "bomb.spc"
    _coo_bomb(path)
    assert path.stat().st_size < 1000
    with pytest.raises(sc.FormatError, match="decode budget"):
        sc.load(path)
    for command in ("verify", "info"):
        one_line_error(*cli(capsys, command, str(path)))
    one_line_error(*cli(capsys, "unpack", str(path), "-o", str(tmp_path / "out.npz")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.spc"]
    # a caller who trusts the file raises the budget; products never allocate the matrix
    t = sc.load(path, max_bytes=None)["w"]
    assert t.shape == (40000, 40000) and not np.any(np.ones(40000) @ t)
    with pytest.raises(sc.FormatError, match="decode budget"):
        sc.load(path, max_bytes=10**9)


def test_the_budget_admits_real_layers(tmp_path):
    rng = np.random.default_rng(0)
    W = (rng.integers(1, 9, (1024, 1024)) * (rng.random((1024, 1024)) < 0.01)) \
        .astype(np.float32)
    sc.save(tmp_path / "l.spc", {"w": sc.encode(W, format="sham")})
    assert np.array_equal(sc.load(tmp_path / "l.spc")["w"].decode(), W)
    with pytest.raises(sc.FormatError, match="decode budget"):
        sc.load(tmp_path / "l.spc", max_bytes=W.nbytes - 1)
    assert sc.load(tmp_path / "l.spc", max_bytes=W.nbytes)["w"].shape == W.shape


def test_cer_validation_costs_what_is_stored(tmp_path):
    """A few hundred bytes of cer claiming 10^9 rows: validation used 8 GB; now it runs in a
    3 GB address space (numba included)."""
    from sparsecodec.coding.bits import pack as pack_bits
    from sparsecodec.coding.bits import unpack as unpack_bits
    from sparsecodec.coding.bits import width_for

    enc = sc.encode(W, format="cer")
    comps = dict(enc.components())  # the same columns, at the width 10^9 rows need
    cols = unpack_bits(comps["col_index"], width_for(W.shape[0] - 1), enc.explicit)
    comps["col_index"] = pack_bits(cols, width_for(10**9 - 1))
    big = type(enc).from_components({**enc.meta, "shape": [10**9, W.shape[1]]}, comps)
    path = tmp_path / "cer.spc"
    sc.save(path, {"w": big}, metadata={})
    assert path.stat().st_size < 1000
    out = run("""
        import sys, sparsecodec as sc
        t = sc.load(sys.argv[1], max_bytes=None)["w"]
        print(t.shape)
        """, path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1000000000, 5)" in out.stdout


@pytest.mark.parametrize("fmt", ["cer", "cser"])
@pytest.mark.parametrize("n", [6, 10**6])
def test_cer_repeated_columns_are_caught_with_and_without_marks(fmt, n):
    from sparsecodec.coding.bits import pack, unpack, width_for

    M = np.zeros((n, 2), np.float32)
    M[[0, 1, 2, 3], [0, 0, 0, 1]] = [1, 2, 2, 1]  # column 0 of W: two values, two groups
    enc = sc.encode(M, format=fmt)
    meta, comps = dict(enc.meta), dict(enc.components())
    cw = width_for(n - 1)
    cols = unpack(comps["col_index"], cw, enc.explicit).astype(np.int64)
    cols[1] = cols[0]  # a position of the second group repeats one of the first
    comps["col_index"] = pack(np.sort(cols[:1]).tolist() + cols[1:].tolist(), cw)
    with pytest.raises(sc.FormatError, match="input index appears twice"):
        type(enc).from_components(meta, comps)


def test_header_size_and_item_count_are_bounded(tmp_path, two):
    header, data = parts(two)
    big = b'{"data_length":0,"metadata":{},"tensors":{}}' + b" " * (17 << 20)
    rebuild(two, header, data, raw_header=big)
    with pytest.raises(sc.FormatError, match="limit"):
        sc.load(two)
    many = b"[" + b"{}," * (2 << 20) + b"{}]"  # 6 MiB of empty objects
    rebuild(two, header, data, raw_header=many)
    with pytest.raises(sc.FormatError, match="more than"):
        sc.load(two)
    digits = json.dumps(header).replace('"data_length": ', '"data_length": ' + "9" * 5000, 1)
    rebuild(two, header, data, raw_header=digits.encode())
    with pytest.raises(sc.FormatError, match="digits"):
        sc.load(two)
    nan = json.dumps(header).replace('"metadata": {}', '"metadata": {"a": NaN}', 1)
    rebuild(two, header, data, raw_header=nan.encode())
    with pytest.raises(sc.FormatError, match="NaN"):
        sc.load(two)


def test_unknown_meta_keys_are_refused(tmp_path):
    path = tmp_path / "m.spc"
    sc.save(path, {"w": sc.encode(W, format="sham"), "b": np.ones(2)})
    for tensor, key in (("w", "junk"), ("b", "junk")):
        header, data = parts(path)
        header["tensors"][tensor]["meta"][key] = 1
        rebuild(path, header, data)
        with pytest.raises(sc.FormatError, match="meta"):
            sc.load(path)


def _foreign_h5(path: Path, **dataset) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("model_weights/dense/kernel:0", **dataset)


@pytest.mark.parametrize("dataset, msg", [
    (dict(shape=(1 << 14, 1 << 14), dtype="f4", chunks=(1024, 1024), compression="gzip"),
     "budget"),
    (dict(shape=(1 << 14, 1 << 14), dtype="f4", fillvalue=1.0), "never written"),
])
def test_hdf5_inputs_cannot_expand_past_the_budget(tmp_path, capsys, dataset, msg):
    src = tmp_path / "bomb.h5"
    _foreign_h5(src, **dataset)
    assert src.stat().st_size < 100_000
    with pytest.raises(sc.FormatError, match=msg):
        adapters.keras_h5.read(src)
    with pytest.raises(sc.SparseCodecError, match=msg):
        pack(src, tmp_path / "o.spc")
    one_line_error(*cli(capsys, "pack", str(src), "-o", str(tmp_path / "o.spc")))
    assert not (tmp_path / "o.spc").exists()


def test_npz_members_cannot_claim_more_than_they_hold(tmp_path):
    import zipfile

    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, w=np.zeros((4096, 4096), np.float32))  # 64 MiB -> 65 kB
    with pytest.raises(sc.FormatError, match="budget"):
        adapters.npz.read(path, max_bytes=1 << 20)
    assert adapters.npz.read(path)["w"].shape == (4096, 4096)
    header = np.lib.format.header_data_from_array_1_0(np.zeros(4, np.float32))
    header["shape"] = (1 << 40,)
    with zipfile.ZipFile(path, "w") as z, z.open("w.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 16)
    with pytest.raises(sc.FormatError, match="claims"):
        adapters.npz.read(path)


def test_unpack_writes_nothing_when_the_output_fails(tmp_path):
    src = tmp_path / "m.spc"
    sc.save(src, {"x": np.ones(2 << 20, np.float32)})
    for out in ("out.npz", "out.safetensors"):
        r = run("""
            import sys
            from sparsecodec.cli import main
            sys.exit(main(["unpack", sys.argv[1], "-o", sys.argv[2]]))
            """, src, tmp_path / out, fsize_mb=1)
        assert r.returncode == 2, r.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.spc"]


# --------------------------------------------------------------- 10: SIGBUS


@pytest.mark.parametrize("name", ["t.spc", "t.h5"])
def test_a_file_truncated_after_open_is_an_error_not_sigbus(tmp_path, name):
    path = tmp_path / name
    sc.save(path, {"a": np.ones(1 << 20, np.float32), "b": np.ones(1 << 20, np.float32),
                   "w": sc.encode(W, format="sham")})
    out = run("""
        import os, sys, sparsecodec as sc
        f = sc.open(sys.argv[1])
        os.truncate(sys.argv[1], 4096)
        for name in ("a", "b", "w"):
            try:
                f[name]
                print("loaded", name)
            except sc.FormatError as exc:
                print("refused", name, "changed size" in str(exc))
        """, path)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.split("\n")[:3] == ["refused a True", "refused b True", "refused w True"]


@pytest.mark.parametrize("name", ["t.spc", "t.h5"])
def test_files_read_into_memory_survive_truncation(tmp_path, name):
    path = tmp_path / name
    W16 = (np.arange(48, dtype=np.float16).reshape(8, 6) % 5) / 4
    sc.save(path, {"a": np.arange(1 << 16, dtype=np.float32), "w": sc.encode(W16)})
    t = sc.load(path, mmap=False)
    assert not any(isinstance(getattr(v, "base", None), np.memmap) for v in t.values())
    os.truncate(path, 0)
    assert np.array_equal(t["a"], np.arange(1 << 16, dtype=np.float32))
    assert same_bits(t["w"].decode(), W16)


# --------------------------------------------------------------- 11: the error contract


@pytest.mark.parametrize("mutate, msg", [
    (lambda h: h["tensors"]["b"]["components"]["values"].update(shape=[0, 2**62], length=0),
     "shape"),
    (lambda h: h["tensors"]["b"]["components"]["values"].update(shape=[0] * 65, length=0),
     "at most 32"),
    (lambda h: h["tensors"]["b"].update(shape=[1] * 40), "at most 32"),
    (lambda h: h["tensors"]["b"].update(shape=[True]), "shape"),
])
def test_hostile_shapes_are_format_errors(two, mutate, msg):
    header, data = parts(two)
    mutate(header)
    rebuild(two, header, data)
    with pytest.raises(sc.FormatError, match=msg):
        sc.load(two)


@pytest.fixture
def h5file(tmp_path):
    path = tmp_path / "m.h5"
    sc.save(path, {"w": sc.encode(W, format="csr"), "b": np.ones(3, np.float32)})
    return path


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize("edit, msg", [
    (lambda f: f["tensors/0"].attrs.__setitem__("meta", "[" * 100000 + "]" * 100000), "JSON"),
    (lambda f: f.attrs.__setitem__("sparsecodec", np.array([1, 1])), "not a sparsecodec"),
    (lambda f: f.attrs.__setitem__("sparsecodec", "1"), "not a sparsecodec"),
    (lambda f: f.attrs.__setitem__("metadata", np.arange(3)), "metadata"),
    (lambda f: f["tensors"].move("1", "²"), "named 0, 1, 2"),
    (lambda f: f["tensors/0"].attrs.__setitem__("name", np.arange(2)), "name"),
    (lambda f: f["tensors/0"].attrs.__setitem__("shape", np.array([[6, 5]])), "shape"),
    (lambda f: f["tensors/0"].attrs.__setitem__("shape", np.array([6.5, 5])), "shape"),
    (lambda f: (f["tensors/0"].__delitem__("indptr"),
                f["tensors/0"].__setitem__("indptr", h5py.SoftLink("/nowhere"))), "SoftLink"),
    (lambda f: (f["tensors/0"].__delitem__("indptr"),
                f["tensors/0"].__setitem__("indptr", h5py.SoftLink("/tensors/1/values"))),
     "SoftLink"),
    (lambda f: f["tensors/0"].attrs.__setitem__("meta", '{"junk": 1}'), "meta"),
])
def test_hostile_hdf5_files_are_format_errors(h5file, edit, msg):
    _edit(h5file, edit)
    with pytest.raises(sc.FormatError, match=msg):
        sc.load(h5file)


def test_hdf5_external_storage_virtual_datasets_and_links_are_refused(tmp_path, h5file):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(100, dtype=np.uint64).tobytes())
    path = tmp_path / "ext.h5"
    cases = {
        "external raw storage": lambda f: f["tensors/1"].create_dataset(
            "values", (3,), "<f4", external=[(str(secret), 0, 12)]),
        "virtual": lambda f: f["tensors/1"].create_virtual_dataset(
            "values", _virtual_layout(secret)),
        "ExternalLink": lambda f: f["tensors/1"].__setitem__(
            "values", h5py.ExternalLink(str(h5file), "/tensors/1/values")),
        "contiguously without filters": lambda f: f["tensors/1"].create_dataset(
            "values", data=np.ones(3, np.float32), **_compact()),
        "contiguously": lambda f: f["tensors/1"].create_dataset(
            "values", data=np.ones(3, np.float32), chunks=(3,)),
    }
    for msg, make in cases.items():
        sc.save(path, {"w": sc.encode(W, format="csr"), "b": np.ones(3, np.float32)})
        with h5py.File(path, "r+") as f:
            del f["tensors/1/values"]
            make(f)
        with pytest.raises(sc.FormatError, match=msg):
            sc.load(path)


def _compact():
    return {"compact": True} if "compact" in h5py.Group.create_dataset.__doc__ else \
        {"dcpl": _compact_plist()}


def _compact_plist():
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_layout(h5py.h5d.COMPACT)
    return plist


def _virtual_layout(secret: Path):
    other = secret.with_suffix(".h5")
    with h5py.File(other, "w") as g:
        g["x"] = np.arange(3, dtype=np.float32)
    layout = h5py.VirtualLayout(shape=(3,), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(other), "x", shape=(3,))
    return layout


def test_keras_files_with_external_storage_are_refused(tmp_path, capsys):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(16, dtype=np.float32).tobytes())
    src = tmp_path / "model.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("model_weights/dense/kernel:0", (4, 4), "<f4",
                         external=[(str(secret), 0, 64)])
        f["model_weights/dense/bias:0"] = np.zeros(4, np.float32)
        f["model_weights/link"] = h5py.ExternalLink(str(secret), "/x")
        f["model_weights/soft"] = h5py.SoftLink("/model_weights/dense/kernel:0")
    with pytest.raises(sc.FormatError, match="external raw storage"):
        adapters.keras_h5.read(src)
    from sparsecodec.sources import HDF5Source

    source = HDF5Source(src)
    assert sorted(source) == ["model_weights/dense/bias:0", "model_weights/dense/kernel:0"]
    with pytest.raises(sc.FormatError, match="external raw storage"):
        source["model_weights/dense/kernel:0"]
    one_line_error(*cli(capsys, "pack", str(src), "-o", str(tmp_path / "o.spc")))
    assert not (tmp_path / "o.spc").exists()
    with h5py.File(tmp_path / "ok.h5", "w") as f:  # the same file, plain, still works
        f["model_weights/dense/kernel:0"] = np.arange(16, dtype=np.float32).reshape(4, 4)
    one = adapters.keras_h5.read(tmp_path / "ok.h5")
    assert list(one) == ["model_weights/dense/kernel:0"]
    with pytest.raises(sc.FormatError, match="external raw storage"):  # nor written into
        adapters.keras_h5.write(tmp_path / "out.h5",
                                   {"model_weights/dense/kernel:0": np.ones((4, 4))},
                                   template=src)
    assert secret.read_bytes() == np.arange(16, dtype=np.float32).tobytes()
    assert not (tmp_path / "out.h5").exists()


def _safetensors(path: Path, header: dict, data: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("shape", [[2**64], [2**32, 2**32], [-1, 4], [True, 2], "12"])
def test_safetensors_shapes_are_checked_as_numbers(tmp_path, capsys, shape):
    src = tmp_path / "m.safetensors"
    _safetensors(src, {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}})
    with pytest.raises(sc.FormatError, match="shape"):
        pack(src, tmp_path / "o.spc")
    one_line_error(*cli(capsys, "pack", str(src), "-o", str(tmp_path / "o.spc")))


@pytest.mark.parametrize("record, msg", [
    ("{not json", "JSON"),
    ('{"tensors": []}', "object"),
    ('{"tensors": {"w": 1}}', "exactly"),
    ('{"tensors": {"w": {"shape": [6, 5]}}}', "exactly"),
    ('{"tensors": {"w": {"shape": "65", "transform": "T"}}}', "shape"),
    ('{"tensors": {"w": {"shape": [5, 6], "transform": ["T"]}}}', "transform"),
    ('{"tensors": {"w": {"shape": [5, 6], "transform": "eval"}}}', "transform"),
    ('{"tensors": {"w": {"shape": [1, 2, 3, 4], "transform": "oihw"}}}', "do not fit"),
    ('{"tensors": {"w": {"shape": [7, 7], "transform": "flatten"}}}', "do not fit"),
    ('{"tensors": {"w": {"shape": [6, 5], "transform": "none", "note": 3}}}', "note"),
    ('{"tensors": {"w": {"shape": [6, 5], "transform": "none", "why": "x"}}}', "exactly"),
    ('{"tensors": {"w": {"shape": [6, 5], "transform": "none", "lowrank": ["U"]}}}', "lowrank"),
    ('{"tensors": {"w": {"shape": [6, 5], "transform": "none", "lowrank": "UV"}}}', "lowrank"),
    ('{"tensors": {"v": {"shape": [6, 5], "transform": "none", "lowrank": ["U", "V"]}}}',
     "parts missing"),
    ('{"tensors": ' + "[" * 50000 + "]" * 50000 + "}", "JSON"),
])
def test_hostile_pack_records_are_one_line_errors(tmp_path, capsys, record, msg):
    src = tmp_path / "m.spc"
    sc.save(src, {"w": sc.encode(W)}, metadata={"sparsecodec.pack": record})
    with pytest.raises(sc.FormatError, match=msg):
        unpack(src)
    one_line_error(*cli(capsys, "unpack", str(src), "-o", str(tmp_path / "o.npz")))
    assert not (tmp_path / "o.npz").exists()


# --------------------------------------------------------------- 3: sharded index


@pytest.fixture
def sharded(tmp_path):
    pack({"a": W, "b": W * 2}, tmp_path / "m.spc", shard_size=1)
    index = tmp_path / "m.spc.index.json"
    return index, json.loads(index.read_text())


def _write_index(index: Path, h: dict) -> None:
    index.write_text(json.dumps(h))


@pytest.mark.parametrize("shard", ["..", "", ".", "a\0b", "sub/x.spc", "/etc/passwd",
                                   "..\\x.spc", 7])
def test_shard_names_must_be_plain_file_names(sharded, shard):
    index, h = sharded
    h["weight_map"]["a"] = shard
    _write_index(index, h)
    with pytest.raises(sc.FormatError, match="file name"):
        sc.load(index)


def test_shards_must_be_regular_files_inside_the_folder(tmp_path, sharded):
    index, h = sharded
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    first = h["weight_map"]["a"]
    os.replace(tmp_path / first, outside / first)
    (tmp_path / first).symlink_to(outside / first)
    with pytest.raises(sc.FormatError, match="outside the index's folder"):
        sc.load(index)
    (tmp_path / first).unlink()
    os.mkfifo(tmp_path / first)
    out = run("""
        import sys, sparsecodec as sc
        try:
            sc.load(sys.argv[1])
        except sc.FormatError as exc:
            print("refused:", exc)
        """, index, timeout=60)
    assert out.returncode == 0 and "not a regular file" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("edit, msg", [
    (lambda h: h.pop("version"), "exactly"),
    (lambda h: h.update(version=2), "version"),
    (lambda h: h.update(version="1"), "version"),
    (lambda h: h.update(extra=1), "exactly"),
    (lambda h: h.update(metadata={"a": 1}), "metadata"),
    (lambda h: h.update(weight_map=[]), "weight_map"),
])
def test_hostile_indexes_are_format_errors(sharded, edit, msg):
    index, h = sharded
    edit(h)
    _write_index(index, h)
    with pytest.raises(sc.FormatError, match=msg):
        sc.load(index)


def test_index_json_bombs_and_repeated_keys(sharded):
    index, h = sharded
    index.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(sc.FormatError, match="JSON"):
        sc.load(index)
    text = json.dumps(h).replace('"weight_map": {', '"weight_map": {"a": "x.spc", ', 1)
    index.write_text(text)
    with pytest.raises(sc.FormatError, match="repeats"):
        sc.load(index)


def test_a_fifo_given_as_any_file_is_refused_without_waiting(tmp_path):
    names = ("m.spc", "m.h5", "m.spc.index.json", "m.npz", "m.safetensors")
    for name in names:
        os.mkfifo(tmp_path / name)
    (tmp_path / "d.spc").mkdir()  # a folder given as a file
    out = run("""
        import sys, sparsecodec as sc
        from pathlib import Path
        from sparsecodec.pack import pack
        folder = Path(sys.argv[1])
        for name in ("m.spc", "m.h5", "m.spc.index.json", "d.spc"):
            try:
                sc.load(folder / name)
            except sc.FormatError as exc:
                print("refused", name, "not a regular file" in str(exc))
        for name in ("m.npz", "m.safetensors"):
            try:
                pack(folder / name, folder / "o.spc")
            except sc.FormatError as exc:
                print("refused", name, "not a regular file" in str(exc))
        """, tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:-1] == [f"refused {name} True" for name in
                                           ("m.spc", "m.h5", "m.spc.index.json", "d.spc",
                                            "m.npz", "m.safetensors")]


# --------------------------------------------------------------- 4: ONNX external data


def _onnx_with_external(folder: Path, values: np.ndarray, location: str) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=values.shape)
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"),
                       ("length", str(values.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    node = helper.make_node("Identity", ["w"], ["y"])
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info(
        "y", TensorProto.FLOAT, values.shape)], initializer=[tensor])
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_onnx_external_data_comes_from_the_models_folder(tmp_path, monkeypatch, capsys):
    model_dir, elsewhere = tmp_path / "model", tmp_path / "cwd"
    model_dir.mkdir()
    elsewhere.mkdir()
    real = np.arange(12, dtype=np.float32).reshape(3, 4)
    (model_dir / "weights.bin").write_bytes(real.tobytes())
    (elsewhere / "weights.bin").write_bytes((real * 0 - 1).tobytes())  # a decoy
    path = _onnx_with_external(model_dir, real, "weights.bin")
    monkeypatch.chdir(elsewhere)
    assert np.array_equal(adapters.onnx_file.read(path)["w"], real)
    (tmp_path / "secret.bin").write_bytes(real.tobytes())
    for location in ("../secret.bin", str(tmp_path / "secret.bin"), "missing.bin"):
        path = _onnx_with_external(model_dir, real, location)
        with pytest.raises(sc.FormatError, match="external data"):
            adapters.onnx_file.read(path)
        one_line_error(*cli(capsys, "pack", str(path), "-o", str(tmp_path / "o.spc")))
    (model_dir / "m.onnx").write_bytes(b"\x08\x07 not a protobuf at all \xff")
    one_line_error(*cli(capsys, "pack", str(model_dir / "m.onnx"), "-o",
                        str(tmp_path / "o.spc")))
    assert not (tmp_path / "o.spc").exists()


def test_header_crc_is_over_the_header_bytes(tmp_path):
    path = tmp_path / "c.spc"
    sc.save(path, {"b": np.ones(2)})
    raw = path.read_bytes()
    magic, version, crc, hlen = ct.PREAMBLE.unpack_from(raw)
    assert version == 2 and crc == zlib.crc32(raw[24:24 + hlen])


# --------------------------------------------------------------- damaged HDF5 files


def test_hdf5_fuzz_finding_is_a_format_error():
    """atheris (the hdf5 target) found a file whose damaged link table made h5py raise a bare
    RuntimeError from ``"tensors" in f``."""
    path = Path(__file__).resolve().parent / "data" / "hdf5-fuzz-finding-1.h5"
    with pytest.raises(sc.FormatError, match="HDF5"):
        sc.load(path)


def test_damaged_hdf5_files_are_format_errors(tmp_path):
    path = tmp_path / "m.h5"
    sc.save(path, {"w": sc.encode(W, format="sham"), "b": np.ones(3, np.float32)})
    raw = path.read_bytes()
    rng = np.random.default_rng(14)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(300):
        damaged = bytearray(raw)
        for at in rng.integers(0, len(raw), rng.integers(1, 4)):
            damaged[at] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(damaged))
        try:
            for t in sc.load(path).values():
                if isinstance(t, sc.Encoded):
                    t.decode()
            outcomes["loaded"] += 1
        except sc.FormatError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and sum(outcomes.values()) == 300


@pytest.mark.parametrize("finding", ["npz-fuzz-finding-1.npz", "npz-fuzz-finding-2.npz"])
def test_npz_fuzz_findings_are_format_errors(finding):
    """atheris (the npz target) found an archive whose damaged deflate stream raised a bare
    zlib.error, and one whose damaged .npy header made numpy raise tokenize.TokenError."""
    from sparsecodec.sources import NpzSource

    src = NpzSource(Path(__file__).resolve().parent / "data" / finding)
    with pytest.raises(sc.FormatError, match="Error"):
        for name in src:
            src.info(name)
            src[name]


@pytest.mark.parametrize("description, msg", [
    ("[" * 50000 + "]" * 50000, "JSON"),
    ('{"type": "linear"}', "list of layers"),
    ('[{"type": "linear", "weight": ["w"]}]', "layer 0"),
    ('[{"type": "maxpool2d", "kernel_size": "x"}]', "layer 0"),
    ('[{"type": "linear", "weight": "nowhere"}]', "missing"),
])
def test_hostile_model_descriptions_are_format_errors(tmp_path, description, msg):
    from sparsecodec.runtime import load_model

    path = tmp_path / "m.spc"
    sc.save(path, {"w": sc.encode(W)}, metadata={"sparsecodec.model": description})
    with pytest.raises(sc.FormatError, match=msg):
        load_model(path)


def test_indexes_over_the_size_limit_are_refused_clearly(tmp_path, sharded, monkeypatch):
    import sparsecodec.adapters.safetensors_file as st
    import sparsecodec.io.sharded as sharded_module

    index, _ = sharded
    limit = index.stat().st_size - 1
    monkeypatch.setattr(sharded_module, "MAX_INDEX", limit)
    with pytest.raises(sc.FormatError, match="over the .*-byte limit"):
        sc.load(index)
    st_index = tmp_path / "model.safetensors.index.json"
    st_index.write_text(json.dumps({"weight_map": {"w": "x.safetensors"}}))
    monkeypatch.setattr(st, "MAX_INDEX", 10)
    with pytest.raises(sc.FormatError, match="over the 10-byte limit"):
        st.SafetensorsIndexSource(st_index)


@pytest.mark.parametrize("config", [
    '{"class_name": "Sequential", "config": {"layers": [1]}}',
    '{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense"}]}}',
    '{"class_name": "Sequential", "config": {}}',
    "[" * 50000 + "]" * 50000,
])
def test_hostile_keras_model_configs_are_format_errors(tmp_path, config):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = config
        f["model_weights/dense/dense/kernel:0"] = np.ones((2, 2), np.float32)
    with pytest.raises(sc.FormatError, match="model_config"):
        adapters.keras_h5.sequential_spec(path)
