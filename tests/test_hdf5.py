"""The HDF5 backend: the same tensors in and out, chosen by extension or by backend=."""

import h5py
import numpy as np
import pytest
from strategies import same_bits
from test_container import W0, check_equal, model

import sparsecodec as sc


@pytest.mark.parametrize("name, backend", [("m.h5", None), ("m.hdf5", None), ("m.bin", "hdf5")])
def test_round_trip(tmp_path, name, backend):
    t = model()
    t["nested/name with/slashes"] = np.ones(2, np.uint8)
    sc.save(tmp_path / name, t, metadata={"model": "x"}, backend=backend)
    assert h5py.is_hdf5(tmp_path / name)
    check_equal(sc.load(tmp_path / name, backend=backend), t)
    with sc.open(tmp_path / name, backend=backend) as f:
        assert f.metadata == {"model": "x"} and list(f) == list(t)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_components_are_mapped_not_read(tmp_path):
    sc.save(tmp_path / "m.h5", model())
    f = sc.open(tmp_path / "m.h5")
    assert isinstance(f["bias"], np.memmap)
    assert isinstance(f["w_sham"].part.words, np.memmap)
    assert same_bits(f["w_sham"].decode(), W0)


def test_unknown_backend_and_foreign_files(tmp_path):
    with pytest.raises(sc.SparseCodecError, match="backend"):
        sc.save(tmp_path / "m.h5", {}, backend="zip")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(sc.FormatError, match="HDF5"):
        sc.load(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.ones(3)
    with pytest.raises(sc.FormatError, match="not a sparsecodec"):
        sc.load(tmp_path / "other.h5")


@pytest.mark.parametrize("attr, value, msg", [
    ("format", "zip", "unknown format"),
    ("meta", "{not json", "attributes"),
    ("shape", np.array([2**40, 2**40]), "shape"),
    ("dtype", "int8", "dtype"),
])
def test_hostile_attributes(tmp_path, attr, value, msg):
    path = tmp_path / "m.h5"
    sc.save(path, {"w": sc.encode(W0, format="sham")})
    with h5py.File(path, "r+") as f:
        f["tensors/0"].attrs[attr] = value
    with pytest.raises(sc.FormatError, match=msg):
        sc.load(path)
    if attr in ("format", "shape"):  # what info reads: refused there too, from the header
        with sc.open(path) as f, pytest.raises(sc.FormatError, match=msg):
            f.info("w")


def test_hostile_datasets(tmp_path):
    path = tmp_path / "m.h5"
    sc.save(path, {"w": sc.encode(W0, format="csr")})
    with h5py.File(path, "r+") as f:
        del f["tensors/0/indptr"]
        f["tensors/0/indptr"] = np.ones(3, np.complex64)
    with pytest.raises(sc.FormatError, match="not allowed"):
        sc.load(path)
    with h5py.File(path, "r+") as f:
        del f["tensors/0/indptr"]
        f["tensors/0/indptr"] = np.ones(3, np.uint64)
    with pytest.raises(sc.FormatError, match="indptr"):
        sc.load(path)
