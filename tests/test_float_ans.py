"""float_ans: unquantized floats of every width (bfloat16 included) bit for bit, its bytes
against what the layout says they must be, its model's choices, hostile input, and pack."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsecodec as sc
from sparsecodec.coding.information import information_bits
from sparsecodec.dtypes import bfloat16, is_bfloat16
from sparsecodec.formats.base import Matrix
from sparsecodec.formats.float_ans import FIELDS, FloatANS, key_range

NAMES = ("float16", "bfloat16", "float32", "float64")
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def dtype_of(name):
    return bfloat16() if name == "bfloat16" else np.dtype(name)


def bits(A):
    return np.ascontiguousarray(A).view(UINT[A.dtype.itemsize])


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(bits(a), bits(b))


@st.composite
def float_matrices(draw, max_side=40):
    """Bit patterns of every kind: weights with row and column scales, raw random bits (NaN
    payloads, infinities, subnormals), runs of +0.0 and -0.0."""
    name = draw(st.sampled_from(NAMES))
    dt = dtype_of(name)
    n = draw(st.integers(0, max_side))
    m = draw(st.integers(0, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    W = (rng.standard_normal((n, m)) * np.exp(rng.normal(0, 1.5, (n, 1)))
         * np.exp(rng.normal(0, 1.5, (1, m))) * 10.0 ** draw(st.integers(-30, 3)))
    with np.errstate(over="ignore"):  # large scales overflow to inf: wanted
        A = W.astype(np.float32).astype(dt)
    B = bits(A)
    raw = rng.integers(0, np.iinfo(B.dtype).max, (n, m), dtype=B.dtype, endpoint=True)
    kind = rng.random((n, m))
    mix = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    B[kind < mix] = raw[kind < mix]
    zero = rng.random((n, m)) < draw(st.sampled_from([0.0, 0.3, 0.9]))
    B[zero] = 0
    B[zero & (rng.random((n, m)) < 0.5)] = B.dtype.type(1) << B.dtype.type(8 * B.itemsize - 1)
    return A


@given(float_matrices(), st.sampled_from([None, 0, 1, 4]),
       st.sampled_from([None, "none", "rows", "cols", "both"]),
       st.sampled_from([None, 1, 7, 64, 1 << 15]))
@settings(max_examples=150, deadline=None)
def test_every_bit_pattern_round_trips(A, head_bits, shift, block_symbols):
    head_bits = None if head_bits is None else min(head_bits, FIELDS[A.dtype.name][1])
    enc = FloatANS.encode(A, head_bits=head_bits, shift=shift, block_symbols=block_symbols)
    assert enc.dtype == A.dtype
    assert same(enc.decode(), A)
    assert enc.nbytes == sum(c.nbytes for c in enc.components().values())
    assert FloatANS.size_of(Matrix(A), head_bits=head_bits, shift=shift,
                            block_symbols=block_symbols) == enc.nbytes
    again = FloatANS.from_components(json.loads(json.dumps(enc.meta)),
                                     {k: v.copy() for k, v in enc.components().items()})
    assert same(again.decode(), A)
    n, m = A.shape
    if m:
        lo = int(np.random.default_rng(n).integers(0, m))
        assert same(enc.decode_columns(lo, m), A[:, lo:])


@given(float_matrices(max_side=30))
@settings(max_examples=60, deadline=None)
def test_products_against_numpy(A):
    n, m = A.shape
    X = np.random.default_rng(1).standard_normal((3, n))
    enc = FloatANS.encode(A, block_symbols=16)
    with np.errstate(invalid="ignore", over="ignore"):
        want = X @ (A.astype(np.float32) if is_bfloat16(A.dtype) else A).astype(np.float64)
        got = enc.rmatmul(X.astype(np.float64))
        assert np.allclose(got, want, rtol=1e-12, atol=1e-300, equal_nan=True)
        assert np.allclose(enc.rmatvec(X[0]), want[0], rtol=1e-12, atol=1e-300,
                           equal_nan=True)


def test_bytes_are_what_the_layout_says():
    """Tails: each block's nonzero entries, L + 1 bits each, in 16 lanes of 32-bit words
    (16 * ceil(ceil(tails / 16) * (L + 1) / 32) words a block), then 16 spare words; the
    rANS words hold at least the symbols' information and at most 1% more plus the 32
    flushed states of each block; the table is the varints of the keys and frequencies."""
    rng = np.random.default_rng(3)
    W = (rng.standard_normal((300, 200)) * np.exp(rng.normal(0, 1, (300, 1)))).astype(np.float32)
    W[rng.random(W.shape) < 0.2] = 0
    W[0, :7] = -0.0
    enc = FloatANS.encode(W, block_symbols=4096)
    _, P = FIELDS["float32"]
    t, bc = enc.meta["head_bits"], enc.meta["block_cols"]
    w = P - t + 1
    tailed = (bits(W) << np.uint32(1)) != 0
    want = sum(16 * -(-(-(-int(tailed[:, j:j + bc].sum()) // 16) * w) // 32)
               for j in range(0, 200, bc))
    assert enc.tails.dtype == np.uint32
    assert enc.tails.size == want + 16 and int(enc.tail_ptr[-1]) == want
    assert enc.meta["zeros"] == 3 and enc.row_shift.size == 300
    # the symbols' information, from the keys computed here
    E = FIELDS["float32"][0]
    v = bits(W) & np.uint32(0x7FFFFFFF)
    o = (enc.row_shift.astype(np.int64)[:, None] + (enc.col_shift.astype(np.int64)[None, :]
                                                     if enc.col_shift.size else 0) + 2) >> 2
    keys = (v.astype(np.int64) >> (P - t)) - (o << t)
    sym = np.where(v == 0, -(1 << 40) - (bits(W) >> 31).astype(np.int64), keys)
    counts = np.unique(sym, return_counts=True)[1]
    info = information_bits(counts) / 8
    nblocks = enc.word_ptr.size - 1
    assert info <= enc.words.nbytes <= 1.01 * info + 32 * 4 * nblocks
    assert enc.meta["nsym"] == counts.size
    lo, size = key_range(E, t)
    assert lo <= keys[v != 0].min() and keys[v != 0].max() < lo + size


def test_row_and_column_offsets_pay_where_scales_differ():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((512, 512))
    scaled = (G * np.exp(rng.normal(0, 1, (512, 1))) * np.exp(rng.normal(0, 1, (1, 512))))
    enc = FloatANS.encode(scaled.astype(np.float32))
    plain = FloatANS.encode(scaled.astype(np.float32), shift="none")
    assert enc.row_shift.size == 512 and enc.col_shift.size == 512
    assert enc.nbytes < 0.98 * plain.nbytes
    iid = FloatANS.encode(G.astype(np.float32))
    assert iid.row_shift.size == 0 and iid.col_shift.size == 0  # nothing to gain: not stored
    assert iid.nbytes < 0.84 * G.astype(np.float32).nbytes


@pytest.mark.parametrize("name", NAMES)
def test_smaller_than_the_raw_bits_on_weights(name):
    rng = np.random.default_rng(1)
    A = (rng.standard_normal((256, 256)) * 0.02).astype(np.float32).astype(dtype_of(name))
    enc = sc.encode(A)
    assert enc.format == "float_ans" and same(enc.decode(), A)
    # the order-0 entropy of sign + exponent + top mantissa, tails raw: about 0.83 (float32),
    # 0.66 (bfloat16), 0.85 (float16), 0.87 (float64)
    assert enc.nbytes < {"float16": 0.86, "bfloat16": 0.67, "float32": 0.84,
                         "float64": 0.88}[name] * A.nbytes


def test_options_and_dtypes_are_checked():
    W = np.ones((4, 4), np.float32)
    for bad in ({"head_bits": 5}, {"head_bits": -1}, {"head_bits": True}, {"shift": "diag"},
                {"block_symbols": 0}):
        with pytest.raises(sc.OptionError):
            FloatANS.encode(W, **bad)
    with pytest.raises(sc.OptionError):
        FloatANS.encode(W.astype(bfloat16()), head_bits=8)  # bfloat16 has 7 mantissa bits
    Wb = W.astype(bfloat16())
    with pytest.raises(sc.EncodeError, match="bfloat16"):
        sc.encode(Wb, format="ham")
    assert set(sc.sizes(Wb)) == {"dense", "float_ans"}
    assert sc.encode(Wb).format in ("dense", "float_ans")


def test_corrupt_components_are_refused_or_decoded_safely():
    rng = np.random.default_rng(5)
    W = (rng.standard_normal((64, 48)) * 0.1).astype(np.float32)
    W[3:9, 2] = 0
    enc = FloatANS.encode(W, block_symbols=300)
    meta, comps = enc.meta, enc.components()
    detected = tried = 0
    for name in ("words", "tails", "table", "word_ptr", "tail_ptr", "row_shift"):
        a = comps[name]
        if not a.size:
            continue
        for _trial in range(25):
            b = a.copy()
            flat = b.view(np.uint8)
            flat[rng.integers(0, flat.size)] ^= np.uint8(1 << rng.integers(0, 8))
            tried += 1
            try:
                got = FloatANS.from_components(meta, {**comps, name: b}).decode()
            except sc.FormatError:
                detected += 1
                continue
            assert got.shape == W.shape
    assert detected >= 0.4 * tried  # tail flips are undetectable by design: raw bits
    # the rANS state count is 32 or 64; the other count reads the streams wrongly: refused
    for states in (0, 33, 48, 128, True):
        with pytest.raises(sc.FormatError, match="states"):
            FloatANS.from_components({**meta, "states": states}, comps).decode()
    with pytest.raises(sc.FormatError):
        FloatANS.from_components({**meta, "states": 96 - meta["states"]}, comps).decode()


@given(st.binary(min_size=0, max_size=64), st.integers(0, 6))
@settings(max_examples=200, deadline=None)
def test_fuzzed_tables_and_streams_never_crash(data, which):
    W = np.arange(24, dtype=np.float32).reshape(4, 6) / 7
    enc = FloatANS.encode(W, block_symbols=8)
    comps = {k: v.copy() for k, v in enc.components().items()}
    name = sorted(comps)[which % len(comps)]
    dt = comps[name].dtype
    usable = len(data) // dt.itemsize * dt.itemsize
    comps[name] = np.frombuffer(data[:usable], dt).copy()
    try:
        FloatANS.from_components(enc.meta, comps).decode()
    except sc.FormatError:
        pass


def test_pack_stores_unquantized_floats_losslessly(tmp_path):
    """Weights without a quantizer, embeddings, norms and biases: float_ans where it adds
    fewer bytes than the array, bfloat16 kept as bfloat16, everything back bit for bit."""
    from sparsecodec.adapters import safetensors_file
    from sparsecodec.pack import pack, unpack

    rng = np.random.default_rng(2)
    tensors = {
        "emb.weight": (rng.standard_normal((500, 32)) * 0.05).astype(bfloat16()),
        "ln.weight": (1 + 0.01 * rng.standard_normal(32)).astype(bfloat16()),
        "fc.weight": (rng.standard_normal((32, 64)) * 0.05).astype(np.float32),
        "fc.bias": (rng.standard_normal(64) * 0.01).astype(np.float16),
        "tiny.bias": np.zeros(3, np.float32),
        "steps": np.arange(10, dtype=np.int64),
        "count": np.array(7, np.int64),  # 0-d: written and read back as 0-d
    }
    src = tmp_path / "in.safetensors"
    safetensors_file.write(src, tensors, {"format": "pt"})
    rows = {r.name: r for r in pack(src, tmp_path / "out.spc")}
    assert rows["emb.weight"].format == rows["fc.weight"].format == "float_ans"
    assert rows["tiny.bias"].format == rows["steps"].format == "array"
    back = unpack(tmp_path / "out.spc")
    for k, v in tensors.items():
        assert same(back[k], v), k
    safetensors_file.write(tmp_path / "back.safetensors", back, {"format": "pt"})
    again = safetensors_file.read(tmp_path / "back.safetensors")
    assert all(same(again[k], v) for k, v in tensors.items())
    import safetensors.numpy
    theirs = safetensors.numpy.load_file(str(tmp_path / "back.safetensors"))
    assert np.array_equal(theirs["fc.weight"], tensors["fc.weight"])  # their reader agrees
    assert (tmp_path / "out.spc").stat().st_size < src.stat().st_size


def test_bfloat16_state_dicts_stay_bfloat16(tmp_path):
    torch = pytest.importorskip("torch")
    from sparsecodec.adapters import npz, torch_file

    sd = {"w": torch.randn(16, 8).to(torch.bfloat16), "h": torch.randn(4).half()}
    torch.save(sd, tmp_path / "m.pt")
    got = torch_file.read(tmp_path / "m.pt")
    assert got["w"].dtype == bfloat16() and got["h"].dtype == np.float16
    torch_file.write(tmp_path / "back.pt", got)
    back = torch.load(tmp_path / "back.pt", weights_only=True)
    assert back["w"].dtype == torch.bfloat16 and torch.equal(back["w"], sd["w"])
    npz.write(tmp_path / "m.npz", got)  # .npy has no bfloat16: float32, exactly
    with np.load(tmp_path / "m.npz") as d:
        assert d["w"].dtype == np.float32
        assert np.array_equal(d["w"], sd["w"].float().numpy())


def test_a_model_packed_losslessly_runs_on_its_encoded_weights(tmp_path):
    """No quantizer: weights and biases in float_ans; the runtime multiplies block by block
    and reads vectors stored as one row; the outputs equal numpy's on the original weights."""
    from sparsecodec import runtime as rt
    from sparsecodec.pack import pack

    rng = np.random.default_rng(4)
    t = {"fc1.weight": (rng.standard_normal((2048, 80)) * 0.1).astype(np.float32),
         "fc1.bias": (rng.standard_normal(2048) * 0.1).astype(np.float32),
         "fc2.weight": (rng.standard_normal((64, 2048)) * 0.1).astype(np.float32),
         "fc2.bias": (rng.standard_normal(64) * 0.1).astype(np.float32)}
    spec = [{"type": "linear", "weight": "fc1.weight", "bias": "fc1.bias",
             "activation": "relu"},
            {"type": "linear", "weight": "fc2.weight", "bias": "fc2.bias"}]
    rows = {r.name: r.format for r in pack(t, tmp_path / "m.spc", layout="torch", model=spec)}
    assert rows["fc1.weight"] == rows["fc2.weight"] == rows["fc1.bias"] == "float_ans"
    model = rt.load_model(tmp_path / "m.spc")
    assert all(isinstance(L.weight, FloatANS) for L in model.layers)
    x = rng.standard_normal((5, 80))
    h = np.maximum(x @ t["fc1.weight"].T.astype(np.float64) + t["fc1.bias"], 0)
    want = h @ t["fc2.weight"].T.astype(np.float64) + t["fc2.bias"]
    np.testing.assert_allclose(model(x), want, rtol=1e-12, atol=1e-12)


def test_products_decode_a_few_blocks_at_a_time():
    """x @ W on a 2048 x 2048 float32 layer allocates a scratch of a few blocks, far below a
    dense copy of W."""
    import tracemalloc

    W = (np.random.default_rng(0).standard_normal((2048, 2048)) * 0.02).astype(np.float32)
    enc = FloatANS.encode(W)
    x = np.random.default_rng(1).standard_normal((4, 2048))
    np.testing.assert_allclose(x @ enc, x @ W.astype(np.float64), rtol=1e-10)
    tracemalloc.start()
    x @ enc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < W.nbytes / 4  # 16 MiB dense; the scratch is 4 blocks per thread


def _decode_with(enc, vector):
    """All blocks of ``enc`` through ``kernels.floats.decode_blocks``, with the vector loops or
    the scalar ones only."""
    from sparsecodec.kernels import floats as kf
    n, m = enc.shape
    _, P = FIELDS[enc.dtype.name]
    nblocks = enc.word_ptr.size - 1
    out = np.zeros(n * m, UINT[enc.dtype.itemsize])
    bad = kf.decode_blocks(enc.words, enc.word_ptr, enc.tails, enc.tail_ptr, enc._fb, enc._symt,
                           enc._vslot, enc._zslots, enc._vbase, enc._nzm, enc.sb, P,
                           8 * enc.dtype.itemsize, enc.t, enc._r, enc._c, enc.zeros == 0, n, m,
                           enc.block_cols, 0, nblocks, out, m,
                           np.zeros(max(nblocks, 1), np.int64), enc.states, vector)
    return bad, out.reshape(n, m)


@given(st.sampled_from(["float16", "bfloat16", "float32", "float64"]), st.integers(1, 70),
       st.integers(1, 8), st.sampled_from([16, 32, 48, 64]), st.integers(0, 20),
       st.sampled_from([0.0, 0.3, 0.9]), st.sampled_from([32, 64]),
       st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_vector_and_scalar_value_loops_agree(name, n, groups, bc, nzero, zfrac, states, seed):
    """The vector loops (keys; rANS lanes; values of blocks whose width is a multiple of 16,
    with and without zeros) and the scalar loops code and decode the same bits: any row count
    (the rANS pass's scalar end), blocks with a few zeros (whose tails may take the words of
    a block without) and with many (+0.0 and -0.0), an odd last block, 32 and 64 rANS
    states, and float64 (whose values take the scalar loops)."""
    rng = np.random.default_rng(seed)
    m = 16 * groups + int(rng.integers(0, 2)) * 5
    A = (rng.standard_normal((n, m)) * np.exp(rng.normal(0, 1, (1, m)))).astype(dtype_of(name))
    B = bits(A)
    B[rng.integers(0, n, nzero), rng.integers(0, m, nzero)] = 0
    B[rng.random((n, m)) < zfrac] = 0
    B[(B == 0) & (rng.random((n, m)) < 0.5)] = B.dtype.type(1) << B.dtype.type(8 * B.itemsize - 1)
    from sparsecodec.formats import float_ans as fa
    from sparsecodec.kernels import simd
    was = fa.STATES_64_FROM, simd.VECTOR
    fa.STATES_64_FROM = 0 if states == 64 else 1 << 20
    try:
        enc = FloatANS.encode(A, block_symbols=n * bc)
        simd.VECTOR = False  # the scalar encoder writes the same words as the vector one
        scalar = FloatANS.encode(A, block_symbols=n * bc)
    finally:
        fa.STATES_64_FROM, simd.VECTOR = was
    assert enc.block_cols == min(bc, m) and enc.states == states
    assert enc._vslot.size == (1 << enc.sb if name != "float64" else 0)  # 32-bit loops
    for vector in (True, False):
        bad, out = _decode_with(enc, vector)
        assert bad == -1 and np.array_equal(out, B)
    assert all(np.array_equal(a, scalar.components()[k]) for k, a in enc.components().items())


@given(st.sampled_from(["float16", "bfloat16", "float32", "float64"]), st.integers(1, 40),
       st.integers(1, 90), st.integers(1, 3), st.sampled_from([0.0, 0.2, 0.9]),
       st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_key_histograms_vector_and_scalar_agree(name, n, m, step, zfrac, seed):
    """The choice's four key histograms (no offsets, rows, columns, both) and zero counts are
    the same from the vector key loop as from the scalar loop, on every step-th row of a
    matrix (a strided view, as the choice reads it), against counts made in numpy."""
    from sparsecodec.formats import float_ans as fa
    from sparsecodec.kernels import floats as kf
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((n, m)) * np.exp(rng.normal(0, 1.5, (n, 1)))
         * np.exp(rng.normal(0, 1.5, (1, m))))
    W[rng.random((n, m)) < zfrac] = -0.0
    W[rng.random((n, m)) < zfrac / 2] = 0.0
    M = Matrix(W.astype(dtype_of(name)))
    E, P = FIELDS[name]
    r, c, _, _ = fa._fit(M)
    t = min(4, P)
    lo, size = key_range(E, t)
    got = [kf.key_histograms(M.bits[::step], P, 8 * M.dtype.itemsize, t, r[::step], c, lo,
                             size, vector) for vector in (True, False)]
    B = M.bits[::step].astype(np.int64)
    v = B & ((1 << (8 * M.dtype.itemsize - 1)) - 1)
    nz = v != 0
    rr, cc = r[::step].astype(np.int64)[:, None], c.astype(np.int64)[None, :]
    for axis, off in enumerate([0 * rr + 0 * cc, rr + 0 * cc, 0 * rr + cc, rr + cc]):
        keys = (v >> (P - t)) - lo - (((off + 2) >> 2) << t)
        want = np.bincount(keys[nz], minlength=size)
        assert all(np.array_equal(h[0][axis], want) for h in got)
    signs = (M.bits[::step][~nz] >> (8 * M.dtype.itemsize - 1)).astype(np.int64)
    assert all(np.array_equal(h[1], np.bincount(signs, minlength=2)) for h in got)


def test_a_zero_in_a_block_whose_tails_look_full_is_decoded_exactly():
    """3 zeros among 64 x 64 entries: the block's tails take the words of 4096 tails, yet
    the rANS pass counts the zeros and the block goes to the loop that places tails around
    them."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((64, 64)).astype(np.float32)
    A[3, 5] = A[40, 60] = 0.0
    A[7, 7] = -0.0
    enc = FloatANS.encode(A)
    from sparsecodec.formats.float_ans import tail_words
    w = FIELDS["float32"][1] - enc.t + 1
    assert enc.block_cols == 64 and enc.zeros == 3
    assert int(enc.tail_ptr[1]) == int(tail_words(np.int64(4096), w, A.dtype))
    assert same(enc.decode(), A)
