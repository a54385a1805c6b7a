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


FILES = {fmt: (fmt, None) for fmt in sc.formats()} | mv.VARIANTS  # file stem -> (format, opts)


def test_every_format_and_variant_has_vectors():
    assert sorted(p.stem for p in VECTORS.glob("*.spc")) == sorted([*FILES, mv.FLOATS])


def test_float_vectors_decode_and_encode_again(tmp_path):
    """float_ans on unquantized floats of every width, every special bit pattern included
    (NaN payloads of both signs, infinities, +-0.0, subnormals), with 32 rANS states and (for
    two of them) 64: the file decodes to the stored bits, and encoding the matrices again
    gives the file byte for byte."""
    f = sc.open(VECTORS / f"{mv.FLOATS}.spc")
    expected = np.load(VECTORS / f"{mv.FLOATS}.npz")
    floats = mv.float_matrices()
    assert set(floats) == set(expected.files)
    assert set(f) == set(floats) | {f"{k}_states64" for k in mv.STATES64}
    for name in f:
        base = name.removesuffix("_states64")
        A = floats[base]
        assert np.array_equal(mv.float_bits(A), expected[base])  # the recipe did not drift
        enc = f[name]
        assert enc.format == "float_ans" and enc.dtype == A.dtype and enc.meta["zeros"] == 3
        assert enc.meta["states"] == (64 if name != base else 32)
        assert enc.word_ptr.size > 3  # several blocks
        assert np.array_equal(mv.float_bits(enc.decode()), expected[base])
    sc.save(tmp_path / "again.spc", mv.float_encodings(), metadata={"vectors": mv.FLOATS})
    assert (tmp_path / "again.spc").read_bytes() == (VECTORS / f"{mv.FLOATS}.spc").read_bytes()


def test_variants_differ_from_the_plain_vectors():
    for variant, (fmt, _) in mv.VARIANTS.items():
        assert (VECTORS / f"{variant}.spc").read_bytes() != (VECTORS / f"{fmt}.spc").read_bytes()
    assert sc.open(VECTORS / "ham.default.spc")["long_codes"].part.tables.maxlen == 11
    rows = sc.open(VECTORS / "sham_ans.rows.spc")["long_codes"].meta
    assert rows["order"] == "rows" and rows["gap_model"] and rows["value_model"]
    assert sc.open(VECTORS / "pq.d3-huffman.spc")["small"].meta["coding"] == "huffman"
    state = sc.open(VECTORS / "sham_ans.state.spc")["long_codes"]  # values k/8: on a grid
    assert state.meta["gap_model"] & 8 and state.meta["value_model"] & 8
    assert state.model.parities.any() and (state.model.parities > 1).any()
    assert "parities" in state.components() and "symbols" in state.components()
    grid = sc.open(VECTORS / "sham_ans.grid-state.spc")["long_codes"]
    assert "parities" not in grid.components() and "symbol_levels" in grid.components()
    assert grid.grid.levels.tolist() == list(range(1, 41)) and grid.grid.step == 0.125
    assert np.array_equal(grid.model.parities, state.model.parities)


@pytest.mark.parametrize("stem", FILES)
def test_vectors_decode_to_the_stored_arrays(stem):
    fmt = FILES[stem][0]
    f = sc.open(VECTORS / f"{stem}.spc")
    assert f.metadata == {"vectors": stem}
    assert set(f) == set(mv.matrices())
    for name in f:
        expected = np.load(VECTORS / f"{name}.npy")
        assert f[name].format == fmt
        assert same_bits(f[name].decode(), expected), (fmt, name)
        x = np.ones(expected.shape[0])  # finite x: every format agrees with numpy, NaN included
        with np.errstate(invalid="ignore"):
            assert np.allclose(x @ f[name], x @ expected.astype(np.float64), equal_nan=True)


@pytest.mark.parametrize("stem", FILES)
def test_encoding_again_reproduces_the_files(stem, tmp_path):
    fmt, opts = FILES[stem]
    sc.save(tmp_path / "again.spc", mv.encode_all(fmt, opts), metadata={"vectors": stem})
    assert (tmp_path / "again.spc").read_bytes() == (VECTORS / f"{stem}.spc").read_bytes()


def test_long_codes_really_are_long():
    f = sc.open(VECTORS / "sham.spc")
    assert f["long_codes"].part.tables.maxlen > 11  # the table's fallback path is covered
