"""CER and CSER: the arrays the paper describes, products, and hostile inputs beyond the
generic round-trip and corruption suites (which cover every registered format)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparsecodec as sc
from sparsecodec.coding.bits import pack, unpack, width_for
from sparsecodec.formats.base import registry

# Wiedemann et al.'s example: a 5 x 12 matrix whose rows are outputs; our W is its transpose.
PAPER = np.array([[0, 3, 0, 2, 4, 0, 0, 2, 3, 4, 0, 4],
                  [4, 4, 0, 0, 0, 4, 0, 0, 4, 4, 0, 4],
                  [4, 4, 0, 0, 4, 0, 2, 0, 4, 0, 3, 0],
                  [0, 0, 4, 0, 0, 3, 0, 4, 0, 3, 0, 0],
                  [0, 0, 0, 0, 4, 0, 0, 0, 0, 4, 0, 4]], np.float32)


def arrays(enc):
    n, m = enc.shape
    cw, pw, rw, oiw = enc._widths(n, enc.omega.shape[0], enc.explicit, enc.groups)
    out = {"omega": enc.omega.tolist(),
           "col_index": unpack(enc.col_index, cw, enc.explicit).tolist(),
           "omega_ptr": unpack(enc.omega_ptr, pw, enc.groups + 1).tolist(),
           "row_ptr": unpack(enc.row_ptr, rw, m + 1).tolist()}
    if enc.format == "cser":
        out["omega_index"] = unpack(enc.omega_index, oiw, enc.groups).tolist()
    return out


def test_cer_arrays_of_the_paper_example():
    a = arrays(sc.encode(PAPER.T, format="cer"))
    assert a["omega"] == [0, 4, 3, 2]  # by falling frequency, the implicit 0 first
    assert a["col_index"] == [4, 9, 11, 1, 8, 3, 7, 0, 1, 5, 8, 9, 11, 0, 1, 4, 8, 10, 6, 2, 7,
                              5, 9, 4, 9, 11]
    assert a["omega_ptr"] == [0, 3, 5, 7, 13, 17, 18, 19, 21, 23, 26]
    assert a["row_ptr"] == [0, 3, 4, 7, 9, 10]


def test_cser_stores_only_present_values():
    W = PAPER.T.copy()
    W[:, 1] = np.where(PAPER[1] == 4, 2, 0)  # row 1 now holds only the least frequent value
    cer, cser = arrays(sc.encode(W, format="cer")), arrays(sc.encode(W, format="cser"))
    rank = cer["omega"].index(2.0)
    r0, r1 = cer["row_ptr"][1:3]
    assert r1 - r0 == rank >= 2  # groups for ranks 1 .. rank, the first ones empty
    assert cer["omega_ptr"][r0] == cer["omega_ptr"][r0 + rank - 1]
    s0, s1 = cser["row_ptr"][1:3]
    assert s1 - s0 == 1 and cser["omega_index"][s0] == cser["omega"].index(2.0)


@pytest.mark.parametrize("fmt", ["cer", "cser"])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), m=st.integers(1, 30),
       k=st.integers(1, 6), common=st.sampled_from([0.0, 1.5, -2.0]))
def test_products_with_any_implicit_value(fmt, seed, n, m, k, common):
    """The implicit (most frequent) value need not be zero: dense quantized matrices too."""
    rng = np.random.default_rng(seed)
    levels = np.array([common] + list(rng.integers(-8, 8, k) / 4), np.float32)
    p = np.array([0.6] + [0.4 / k] * k)
    W = rng.choice(levels, size=(n, m), p=p).astype(np.float32)
    enc = sc.encode(W, format=fmt)
    assert np.array_equal(enc.decode().view(np.uint32), W.view(np.uint32))
    X = rng.standard_normal((3, n))
    np.testing.assert_allclose(X @ enc, X @ W.astype(np.float64), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(X[0] @ enc, X[0] @ W.astype(np.float64), rtol=1e-9, atol=1e-9)
    assert enc.nnz == np.count_nonzero(W.view(np.uint32))
    np.testing.assert_array_equal(enc.decode_columns(1, m), W[:, 1:])


def build(fmt, n, groups_per_row, omega=(0.0, 1.0, 2.0)):
    """Components by hand: ``groups_per_row`` lists, per row, (rank, [input indices]) pairs."""
    col, optr, rptr, oidx = [], [0], [0], []
    for row in groups_per_row:
        for rank, idx in row:
            col += idx
            optr.append(len(col))
            oidx.append(rank)
        rptr.append(len(oidx))
    q, g, k = len(col), len(oidx), len(omega)
    comps = {"omega": np.array(omega, np.float32),
             "col_index": pack(np.array(col, np.int64), width_for(n - 1)),
             "omega_ptr": pack(np.array(optr, np.int64), width_for(q)),
             "row_ptr": pack(np.array(rptr, np.int64), width_for(g))}
    if fmt == "cser":
        comps["omega_index"] = pack(np.array(oidx, np.int64), width_for(k - 1))
    meta = {"format": fmt, "shape": [n, len(groups_per_row)], "dtype": "float32",
            "explicit": q, "groups": g}
    return registry()[fmt].from_components(meta, comps)


@pytest.mark.parametrize("fmt", ["cer", "cser"])
def test_hand_built_matrix_decodes(fmt):
    enc = build(fmt, 6, [[(1, [0, 2]), (2, [4])], [(1, [5])]])
    expect = np.zeros((6, 2), np.float32)
    expect[[0, 2], 0], expect[4, 0], expect[5, 1] = 1, 2, 1
    np.testing.assert_array_equal(enc.decode(), expect)


@pytest.mark.parametrize("fmt", ["cer", "cser"])
@pytest.mark.parametrize("rows, message", [
    ([[(1, [0, 2]), (2, [2])]], "appears twice"),
    ([[(1, [2, 0]), (2, [4])]], "not increasing"),
    ([[(1, [0, 7]), (2, [4])]], "out of range"),
    ([[(1, [0]), (2, [1, 2])]], "falling frequency"),
])
def test_hostile_structures_are_refused(fmt, rows, message):
    with pytest.raises(sc.FormatError, match=message):
        build(fmt, 6, rows)


def test_cer_and_cser_specific_rules():
    with pytest.raises(sc.FormatError, match="last group is empty"):
        build("cer", 6, [[(1, [0, 1]), (2, [])]])
    with pytest.raises(sc.FormatError, match="empty group"):
        build("cser", 6, [[(1, [0, 1]), (2, [])]])
    with pytest.raises(sc.FormatError, match="omega_index"):
        build("cser", 6, [[(2, [4]), (1, [0, 2])]])
    with pytest.raises(sc.FormatError, match="never occurs"):
        build("cser", 6, [[(1, [0, 2])]])
    with pytest.raises(sc.FormatError, match="repeats"):
        build("cser", 6, [[(1, [0, 2]), (2, [4])]], omega=(0.0, 1.0, 1.0))


def test_auto_weighs_the_shared_value_formats():
    W = PAPER.T.copy()
    sizes = sc.sizes(W)
    assert {"cer", "cser"} <= set(sizes)
    assert sizes["cer"] == sc.encode(W, format="cer").nbytes
    assert sizes["cser"] == sc.encode(W, format="cser").nbytes
    assert sc.encode(W).format == min(sizes, key=sizes.__getitem__)
    assert width_for(11) == 4  # 12 inputs: col_index at 4 bits, as nbytes assumes
