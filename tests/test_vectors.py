"""Golden vectors (formats/vectors): any change to a format's bytes fails here."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from strategies import same_bits

import sparsecodec as sc

VECTORS = Path(__file__).resolve().parent.parent / "formats" / "vectors"
spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
mv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mv)


def test_every_format_has_vectors():
    assert sorted(p.stem for p in VECTORS.glob("*.spc")) == sorted(sc.formats())


@pytest.mark.parametrize("fmt", sc.formats())
def test_vectors_decode_to_the_stored_arrays(fmt):
    f = sc.open(VECTORS / f"{fmt}.spc")
    assert f.metadata == {"vectors": fmt}
    assert set(f) == set(mv.matrices())
    for name in f:
        expected = np.load(VECTORS / f"{name}.npy")
        assert f[name].format == fmt
        assert same_bits(f[name].decode(), expected), (fmt, name)
        x = np.ones(expected.shape[0])  # finite x: every format agrees with numpy, NaN included
        with np.errstate(invalid="ignore"):
            assert np.allclose(x @ f[name], x @ expected.astype(np.float64), equal_nan=True)


@pytest.mark.parametrize("fmt", sc.formats())
def test_encoding_again_reproduces_the_files(fmt, tmp_path):
    sc.save(tmp_path / "again.spc", mv.encode_all(fmt), metadata={"vectors": fmt})
    assert (tmp_path / "again.spc").read_bytes() == (VECTORS / f"{fmt}.spc").read_bytes()


def test_long_codes_really_are_long():
    f = sc.open(VECTORS / "sham.spc")
    assert f["long_codes"].part.tables.maxlen > 11  # the table's fallback path is covered
