"""One place decides what a file is: io.filetypes. Every framework kind by name, HDF5 told
apart by content (Keras or ours), unknown names refused with the known list, and no other
module comparing extensions."""

import pathlib
import re

import h5py
import numpy as np
import pytest

import sparsecodec as sc
from sparsecodec import adapters
from sparsecodec.io import filetypes as ft


@pytest.mark.parametrize("name, kind", [
    ("m.npz", "npz"), ("M.NPZ", "npz"), ("m.safetensors", "safetensors"),
    ("model.safetensors.index.json", "safetensors"), ("m.onnx", "onnx"), ("m.pt", "torch"),
    ("m.pth", "torch"), ("m.spc", "container"), ("m.spc.index.json", "container"),
    ("m.hdf", "hdf5"),
])
def test_kinds_by_name(tmp_path, name, kind):
    (tmp_path / name).write_bytes(b"")
    assert ft.kind_of(tmp_path / name) == kind


def test_hdf5_files_are_told_apart_by_content(tmp_path):
    with h5py.File(tmp_path / "keras.h5", "w") as f:
        f["dense/kernel"] = np.ones((2, 3), np.float32)
    sc.save(tmp_path / "ours.h5", {"w": sc.encode(np.eye(3, dtype=np.float32), "csr")})
    assert ft.kind_of(tmp_path / "keras.h5") == "keras"
    assert ft.kind_of(tmp_path / "ours.h5") == "hdf5"
    assert ft.is_hdf5_name("x.HDF5") and not ft.is_hdf5_name("x.spc")


def test_unknown_and_missing_files(tmp_path):
    (tmp_path / "w.xyz").write_bytes(b"")
    with pytest.raises(sc.FormatError, match=r"unknown extension '\.xyz'; known: .*\.npz"):
        ft.kind_of(tmp_path / "w.xyz")
    with pytest.raises(FileNotFoundError):
        ft.kind_of(tmp_path / "missing.npz")
    with pytest.raises(sc.FormatError, match="unknown extension"):
        adapters.write(tmp_path / "x.index.json", {})  # an index is read, never written


def test_every_framework_kind_has_one_module_that_reads_lazily_and_writes():
    assert set(adapters.MODULES) == set(ft.FRAMEWORK_EXTENSIONS)
    for kind, module in adapters.MODULES.items():
        for fn in ("read", "source", "write"):
            assert callable(getattr(module, fn)), (kind, fn)


def test_no_other_module_decides_by_extension():
    root = pathlib.Path(sc.__file__).parent
    decides = re.compile(r"""(endswith|suffix)[^\n]*["']\.(h5|hdf5|hdf|npz|safetensors|onnx|"""
                         r"""pt|pth|spc|index\.json)["']""")
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "filetypes.py" and decides.search(p.read_text())]
    assert offenders == []


def test_the_two_safetensors_readers_are_one(tmp_path):
    """The eager read and the lazy source share one header parser: bfloat16 included."""
    import json
    import struct

    bf16 = np.array([0x3F80, 0xC000], np.uint16)  # 1.0, -2.0
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}})
    (tmp_path / "b.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode()
                                             + bf16.tobytes())
    eager = adapters.read(tmp_path / "b.safetensors")["w"]
    lazy = adapters.source(tmp_path / "b.safetensors")["w"]
    assert eager.astype(np.float32).tolist() == lazy.astype(np.float32).tolist() == [1.0, -2.0]
    assert eager.dtype == lazy.dtype and eager.dtype.name == "bfloat16"
