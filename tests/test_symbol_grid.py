"""Value tables stored as a step and integer levels (formats/levels.py, sham_ans's grid
symbols): found for what grid quantizers make, exact, smaller than floats, and checked on
read."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import same_bits

import sparsecodec as sc
from sparsecodec.coding.bits import exp_golomb_encode
from sparsecodec.formats.levels import SymbolGrid, find_grid, index_parities, unzigzag, zigzag
from sparsecodec.formats.sham_ans import SHAMAns


def sorted_symbols(values):
    """As the formats keep them: distinct, ascending bit patterns."""
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[values.dtype.itemsize]
    return np.unique(values.view(u)).view(values.dtype)


@settings(max_examples=200, deadline=None)
@given(dtype=st.sampled_from([np.float16, np.float32]),
       step=st.floats(1e-3, 10.0), seed=st.integers(0, 2**31), top=st.integers(1, 200),
       smallest=st.sampled_from([1, 2]))
def test_a_grid_quantizers_values_are_found_and_given_back_exactly(dtype, step, seed, top,
                                                                   smallest):
    """Values T(step * m), as the uniform and dependent quantizers make them, with level 1 or
    2 among them: the grid is found and gives back every value bit for bit."""
    r = np.random.default_rng(seed)
    if dtype == np.float16:
        top = min(top, 60)
        step = min(step, 1.0)
    m = np.unique(np.append(r.integers(-top, top + 1, 30), smallest * r.choice([-1, 1])))
    m = m[m != 0]
    m = m[np.abs(m) >= smallest]
    vals = sorted_symbols((np.float64(step) * m).astype(dtype))
    grid = find_grid(vals)
    assert grid is not None
    assert same_bits(grid.values(np.dtype(dtype)), vals)
    back = SymbolGrid.read(np.array([grid.step]), grid.words(), len(vals), grid.order, "t")
    assert np.array_equal(back.levels, grid.levels) and back.step == grid.step


def test_values_off_any_grid_have_none():
    assert find_grid(np.array([0.3, 0.7, 1.1], np.float32)) is None
    assert find_grid(np.array([1.0, np.inf], np.float32)) is None
    assert find_grid(np.zeros(0, np.float32)) is None
    assert find_grid(np.arange(1, 5000, dtype=np.float32)) is None  # past MAX_GRID_SYMBOLS


def test_zigzag_and_parities():
    d = np.array([0, 1, -1, 2, -2, 7, -9])
    assert zigzag(d).tolist() == [0, 2, 1, 4, 3, 14, 17]
    assert np.array_equal(unzigzag(zigzag(d)), d)
    m = np.array([-3, -2, -1, 1, 2, 3, 4])
    assert (index_parities(m) & 1).tolist() == [(x // 2) & 1 for x in m]
    assert (index_parities(m) >> 1).tolist() == [((x + int(np.sign(x))) // 2) & 1 for x in m]


def uniform_layer(step=0.01, shape=(64, 48), seed=0):
    W = np.random.default_rng(seed).standard_normal(shape) * 0.05
    return (np.round(W / step) * step).astype(np.float32) + np.float32(0)  # no -0.0 (not
    # on any grid: a level 0 is +0.0, which is never stored)


def test_sham_ans_stores_a_grid_quantizers_symbols_as_levels():
    Q = uniform_layer()
    grid = SHAMAns.encode(Q)
    floats = SHAMAns.encode(Q, symbol_table="floats")
    comps = grid.components()
    assert "symbols" not in comps and {"symbol_step", "symbol_levels"} <= set(comps)
    assert "symbols" in floats.components()
    k = len(grid.symbols)
    assert comps["symbol_levels"].nbytes + 8 < k * 4 // 4  # a quarter of the floats, at most
    assert grid.nbytes < floats.nbytes
    assert floats.nbytes - grid.nbytes == k * 4 - 8 - comps["symbol_levels"].nbytes
    for enc in (grid, floats):
        back = SHAMAns.from_components(enc.meta, enc.components())
        assert same_bits(back.decode(), Q) and same_bits(enc.decode(), Q)
    x = np.ones(Q.shape[0])
    assert np.allclose(x @ grid, x @ Q.astype(np.float64))
    lay = grid.layout()
    assert lay["symbol_step"] == ("codebook", 64)


def test_symbol_table_option():
    with pytest.raises(sc.EncodeError, match="grid"):
        SHAMAns.encode(np.array([[0.3, 0.7], [1.1, 0.0]], np.float32), symbol_table="grid")
    with pytest.raises(sc.OptionError, match="symbol_table"):
        SHAMAns.encode(uniform_layer(), symbol_table="ints")


def test_dependent_output_keeps_its_parities_in_the_levels():
    from sparsecodec.quantize import dependent
    W = (np.random.default_rng(3).standard_normal((96, 64)) * 0.05).astype(np.float32)
    Q = dependent(W, 0.01).values
    enc = SHAMAns.encode(Q, gap_model="state", value_model="state")
    comps = enc.components()
    assert "parities" not in comps and "symbol_levels" in comps
    assert np.array_equal(enc.model.parities, index_parities(enc.grid.levels))
    assert same_bits(SHAMAns.from_components(enc.meta, comps).decode(), Q)
    floats = SHAMAns.encode(Q, gap_model="state", value_model="state", symbol_table="floats")
    assert "parities" in floats.components()
    assert np.array_equal(floats.model.parities, enc.model.parities)


def test_hostile_grids_are_format_errors():
    enc = SHAMAns.encode(uniform_layer())
    meta, comps = dict(enc.meta), dict(enc.components())
    for step in (0.0, -0.01, np.nan, np.inf):
        with pytest.raises(sc.FormatError, match="step"):
            SHAMAns.from_components(meta, {**comps, "symbol_step": np.array([step])})
    with pytest.raises(sc.FormatError):
        SHAMAns.from_components(meta, {**comps, "symbol_step": np.array([0.01, 0.02])})
    k = meta["grid_symbols"]
    for levels, why in (([0] + [1] * (k - 1), "level"),        # a level 0
                        ([1] * k, "ascending"),                # the same level k times
                        ([1 << 41] + [1] * (k - 1), "2\\^40")):
        words = exp_golomb_encode(zigzag(np.diff(np.array(levels), prepend=0)), 0)
        with pytest.raises(sc.FormatError, match=why):
            SHAMAns.from_components({**meta, "grid_order": 0},
                                    {**comps, "symbol_levels": words})
    with pytest.raises(sc.FormatError, match="grid_symbols"):
        SHAMAns.from_components({**meta, "grid_symbols": 0}, comps)
    with pytest.raises(sc.FormatError):
        SHAMAns.from_components({**meta, "grid_symbols": k + 1}, comps)
    with pytest.raises(sc.FormatError, match="components"):
        SHAMAns.from_components({k2: v for k2, v in meta.items()
                                 if k2 not in ("grid_symbols", "grid_order")}, comps)
