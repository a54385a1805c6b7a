"""Hypothesis strategies for weight-like matrices with exotic bit patterns."""

import numpy as np
from hypothesis import strategies as st

DTYPES = [np.float16, np.float32, np.float64]
SPECIAL = [-0.0, np.inf, -np.inf]


def nan_with_payload(dtype, payload):
    bits = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}[dtype]
    exp_mask = {np.float16: 0x7C00, np.float32: 0x7F800000, np.float64: 0x7FF0000000000000}[dtype]
    return np.array([exp_mask | (1 + payload % 50)], dtype=bits).view(dtype)[0]


@st.composite
def matrices(draw, max_side=12, finite=False, dtypes=DTYPES):
    dtype = draw(st.sampled_from(dtypes))
    n = draw(st.integers(0, max_side))
    m = draw(st.integers(0, max_side))
    k = draw(st.integers(1, 6))
    pool = [float(v) for v in draw(st.lists(st.integers(-8, 8), min_size=k, max_size=k))]
    pool = [np.asarray(v / 4, dtype) for v in pool]
    if not finite:
        for v in draw(st.lists(st.sampled_from(SPECIAL + ["nan"]), max_size=2)):
            pool.append(nan_with_payload(dtype, draw(st.integers(0, 9))) if v == "nan"
                        else np.asarray(v, dtype))
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pool), size=(n, m))
    W = np.array(pool, dtype=dtype)[picks]
    W[rng.random((n, m)) >= density] = 0
    return W


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        np.ascontiguousarray(a).view(u), np.ascontiguousarray(b).view(u))


def encode_with(W, fmt, **opts):
    """Encode, passing only the options the format accepts (tests use tiny blocks)."""
    import sparsecodec as sc
    from sparsecodec.formats.base import registry
    allowed = registry()[fmt].options
    return sc.encode(W, format=fmt, **{k: v for k, v in opts.items() if k in allowed})


@st.composite
def large_matrices(draw, dtypes=DTYPES):
    """Matrices past every block and task boundary the kernels split at (16-column product
    tasks, 32-column pq blocks, several Huffman blocks and lanes), with up to 300 values drawn
    with a skew (codes longer than the 11-bit decode table), subnormals, -0.0 and NaN
    payloads."""
    dtype = draw(st.sampled_from(dtypes))
    n = draw(st.integers(1, 90))
    m = draw(st.integers(17, 90))
    k = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    pool = np.concatenate([(rng.integers(-64, 65, k) / 8).astype(dtype),
                           np.array([info.smallest_subnormal, -info.smallest_subnormal,
                                     -0.0], dtype),
                           np.array([nan_with_payload(dtype, draw(st.integers(0, 9)))])])
    picks = np.minimum(rng.geometric(draw(st.sampled_from([0.02, 0.2, 0.6])), (n, m)) - 1,
                       pool.size - 1)
    W = pool[picks]
    W[rng.random((n, m)) >= draw(st.sampled_from([0.05, 0.3, 1.0]))] = 0
    return W
