"""The runtime's graph layers (residual adds, norms, embeddings, attention, grouped convs,
activations) against torch as the oracle, on encoded weights; a BERT-style encoder packed
from safetensors and run without torch."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsecodec as sc
from sparsecodec.errors import FormatError, ShapeError
from sparsecodec.pack import pack, unpack
from sparsecodec.runtime import (
    Attention,
    BatchNorm,
    CompressedConv2d,
    Embedding,
    LayerNorm,
    activate,
    build,
    describe,
    fold_batchnorm,
    load_model,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(0)


def quantized(shape, k=8, density=0.5, seed=0):
    r = np.random.default_rng(seed)
    W = r.standard_normal(shape).astype(np.float32)
    W[r.random(shape) > density] = 0
    levels = np.linspace(-2, 2, k).astype(np.float32)
    nz = W != 0
    W[nz] = levels[np.abs(W[nz, None] - levels).argmin(1)]
    W[W == 0] = 0  # +0.0 only
    return W


@pytest.mark.parametrize("name, ref", [
    ("gelu", lambda t: F.gelu(t)), ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh")),
    ("silu", F.silu), ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid),
    ("relu6", F.relu6), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)])
def test_activations_match_torch(name, ref):
    x = np.linspace(-6, 6, 241)
    np.testing.assert_allclose(activate(x, name), ref(torch.from_numpy(x)).numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fmt", ["sham", "csc", "index_map"])
@pytest.mark.parametrize("cin, cout, groups, stride, padding, dilation", [
    (6, 4, 1, 1, 1, 1), (6, 4, 2, 2, 1, 1), (8, 8, 8, 1, 1, 1), (6, 6, 3, 1, 2, 2),
    (4, 8, 4, 2, 0, 1)])
def test_grouped_dilated_conv_matches_torch(fmt, cin, cout, groups, stride, padding, dilation):
    K = quantized((cout, cin // groups, 3, 3), seed=cin + cout + groups)
    enc = sc.encode(sc.quantize.conv_to_matrix(K, "OIHW"), format=fmt)
    b = RNG.standard_normal(cout)
    conv = CompressedConv2d(enc, 3, b, stride, padding, groups=groups, dilation=dilation)
    x = RNG.standard_normal((2, cin, 9, 9))
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(K.astype(np.float64)),
                   torch.from_numpy(b), stride, padding, dilation, groups).numpy()
    np.testing.assert_allclose(conv(x), ref, rtol=1e-10, atol=1e-10)


def test_grouped_conv_decodes_one_group_at_a_time():
    K = quantized((6, 2, 3, 3))
    enc = sc.encode(sc.quantize.conv_to_matrix(K, "OIHW"), format="sham")
    calls = []
    real = enc.decode_columns
    enc.decode_columns = lambda a, b: calls.append((a, b)) or real(a, b)
    CompressedConv2d(enc, 3, groups=3, padding=1)(RNG.standard_normal((1, 6, 5, 5)))
    assert calls == [(0, 2), (2, 4), (4, 6)]


def test_norms_match_torch():
    x = RNG.standard_normal((3, 5, 16))
    w, b = RNG.standard_normal(16), RNG.standard_normal(16)
    ref = F.layer_norm(torch.from_numpy(x), (16,), torch.from_numpy(w), torch.from_numpy(b),
                       1e-12).numpy()
    np.testing.assert_allclose(LayerNorm(w, b, 1e-12)(x), ref, rtol=1e-10, atol=1e-10)
    x4 = RNG.standard_normal((2, 16, 3, 3))
    mean, var = RNG.standard_normal(16), RNG.random(16) + 0.5
    ref = F.batch_norm(torch.from_numpy(x4), torch.from_numpy(mean), torch.from_numpy(var),
                       torch.from_numpy(w), torch.from_numpy(b), False, 0.0, 1e-5).numpy()
    np.testing.assert_allclose(BatchNorm(mean, var, w, b)(x4), ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ShapeError):
        BatchNorm(mean, var)(x4[:, :4])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 39), min_size=1, max_size=30), st.sampled_from(["sham", "ham",
                                                                                "csc"]))
def test_embedding_rows_are_the_tables_bit_for_bit(ids, fmt):
    table = quantized((40, 12), k=16, density=0.7)  # (vocab, dim), as nn.Embedding holds it
    ids = np.array(ids).reshape(1, -1)
    want = table[ids].astype(np.float64)
    cols = Embedding(sc.encode(np.ascontiguousarray(table.T), format=fmt), "columns")
    rows = Embedding(sc.encode(table, format=fmt), "rows")
    assert np.array_equal(cols(ids), want) and np.array_equal(rows(ids), want)


def test_embedding_decodes_only_the_runs_used_and_positions():
    table = quantized((50, 8), density=0.9)
    enc = sc.encode(np.ascontiguousarray(table.T), format="sham")
    calls = []
    real = enc.decode_columns
    enc.decode_columns = lambda a, b: calls.append((a, b)) or real(a, b)
    enc.decode = None  # never decoded whole
    out = Embedding(enc)(np.array([[7, 3, 4, 5, 7, 20]]))
    assert calls == [(3, 6), (7, 8), (20, 21)]
    assert np.array_equal(out[0], table[[7, 3, 4, 5, 7, 20]])
    pos = Embedding(sc.encode(np.ascontiguousarray(table.T)), positions=True)
    assert np.array_equal(pos(np.zeros((2, 4), int)), np.broadcast_to(table[:4], (2, 4, 8)))
    fixed = Embedding(sc.encode(np.ascontiguousarray(table.T)), fixed=1)
    assert np.array_equal(fixed(np.zeros((1, 3), int))[0], np.repeat(table[1:2], 3, 0))
    with pytest.raises(ShapeError):
        Embedding(enc)(np.array([[50]]))


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_torch(causal):
    B, S, D, H = 2, 7, 24, 3
    q, k, v = (RNG.standard_normal((B, S, D)) for _ in range(3))
    mask = np.ones((B, S))
    mask[1, 5:] = 0
    out = Attention(H, causal)(q, k, v, mask)

    def heads(t):
        return torch.from_numpy(t).view(B, S, H, D // H).transpose(1, 2)

    allowed = torch.from_numpy(mask != 0)[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(S, S, dtype=torch.bool).tril()
    ref = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=allowed)
    np.testing.assert_allclose(out, ref.transpose(1, 2).reshape(B, S, D).numpy(), rtol=1e-9,
                               atol=1e-9)


def test_graph_residual_and_named_inputs():
    W1, W2 = quantized((6, 6), seed=1), quantized((6, 6), seed=2)
    t = {"a": sc.encode(W1), "b": sc.encode(W2), "ln.w": np.ones(6), "ln.b": np.zeros(6)}
    spec = [{"type": "linear", "weight": "a", "name": "h", "activation": "relu"},
            {"type": "linear", "weight": "b"},
            {"type": "add", "input": ["h", "input"], "name": "r"},
            {"type": "layernorm", "weight": "ln.w", "bias": "ln.b", "input": "r"}]
    x = RNG.standard_normal((3, 6))
    # the add reads "h" and the model input, not the output of layer b
    want = LayerNorm(np.ones(6), np.zeros(6))(np.maximum(x @ W1, 0) + x)
    got = build(spec, t)(x)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ShapeError, match="reads 'nope'"):
        build([{"type": "add", "input": ["input", "nope"]}], t)(x)
    with pytest.raises(FormatError, match="at least two"):
        build([{"type": "add", "input": ["input"]}], t)
    with pytest.raises(FormatError, match="'a' is a matrix, not a vector"):
        build([{"type": "layernorm", "weight": "a"}], t)
    with pytest.raises(FormatError, match="three inputs"):
        build([{"type": "attention", "input": ["input"], "heads": 2}], t)


def test_fold_batchnorm_computes_the_same_with_one_layer_less(tmp_path):
    r = np.random.default_rng(3)
    t = {"c.weight": r.standard_normal((4, 3, 3, 3)).astype(np.float32),
         "bn.running_mean": r.standard_normal(4).astype(np.float32),
         "bn.running_var": (r.random(4) + 0.5).astype(np.float32),
         "bn.weight": r.standard_normal(4).astype(np.float32),
         "bn.bias": r.standard_normal(4).astype(np.float32),
         "fc.weight": r.standard_normal((5, 64)).astype(np.float32),
         "bn2.running_mean": r.standard_normal(5).astype(np.float32),
         "bn2.running_var": (r.random(5) + 0.5).astype(np.float32)}
    bn = {"type": "batchnorm", "mean": "bn.running_mean", "var": "bn.running_var",
          "weight": "bn.weight", "bias": "bn.bias"}
    spec = [{"type": "conv2d", "weight": "c.weight", "kernel_size": 3, "padding": 1}, bn,
            {"type": "activation", "name": "relu"}, {"type": "flatten"},
            {"type": "linear", "weight": "fc.weight", "activation": "relu"},
            {"type": "batchnorm", "mean": "bn2.running_mean", "var": "bn2.running_var"}]
    folded_spec, folded = fold_batchnorm(spec, t, "torch")
    assert [L["type"] for L in folded_spec] == ["conv2d", "activation", "flatten", "linear",
                                               "batchnorm"]  # the second follows a relu
    assert "bn.running_mean" not in folded and folded_spec[0]["bias"] == "bn.bias"
    x = r.standard_normal((2, 3, 4, 4))
    from sparsecodec.pack import to_matrix

    def run(sp, tt):
        m = {k: (to_matrix(v, "torch")[0].astype(np.float64) if v.ndim > 1 else v)
             for k, v in tt.items()}
        return build(sp, m, dense=True)(x)

    np.testing.assert_allclose(run(folded_spec, folded), run(spec, t), rtol=1e-5, atol=1e-5)
    # a layer whose output another layer also reads is not folded into
    shared = [{"type": "linear", "weight": "w", "name": "h"},
              {"type": "batchnorm", "mean": "m", "var": "v"},
              {"type": "add", "input": ["h", "input"]}]
    t2 = {"w": r.standard_normal((4, 4)), "m": r.standard_normal(4), "v": r.random(4) + 0.5}
    kept, _ = fold_batchnorm(shared, t2, "matrix")
    assert [L["type"] for L in kept] == ["linear", "batchnorm", "add"]
    named = [{**shared[0]}, {**shared[1], "input": "h"}, {"type": "activation", "name": "relu"}]
    assert [L["type"] for L in fold_batchnorm(named, t2, "matrix")[0]] == ["linear",
                                                                          "activation"]
    # pack folds before quantizing and stores the folded description
    pack(t, tmp_path / "f.spc", layout="torch", model=spec, fold_batchnorm=True)
    assert "bn.running_var" not in unpack(tmp_path / "f.spc")
    np.testing.assert_allclose(load_model(tmp_path / "f.spc")(x), run(spec, t), rtol=1e-5,
                               atol=1e-5)


def test_bert_from_safetensors_runs_without_torch(tmp_path):
    """A BERT-style encoder (Hugging Face names) packed from a safetensors checkpoint with a
    graph description: lossless, the runtime equals torch to float precision; with every
    Linear quantized, it equals torch on the decoded weights."""
    safetensors = pytest.importorskip("safetensors.numpy")
    from sparsecodec.torch.examples import BertLike

    torch.manual_seed(0)
    model = BertLike(vocab=300, hidden=48, layers=2, heads=4, inner=96, positions=32).eval()
    ids = torch.randint(0, 300, (2, 12))
    mask = torch.ones(2, 12)
    mask[0, 9:] = 0
    types = (torch.arange(12) >= 6).long().expand(2, 12).contiguous()
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    safetensors.save_file(sd, str(tmp_path / "bert.safetensors"))
    spec = describe.bert(2, 4)
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
            "token_type_ids": types.numpy()}
    with torch.no_grad():
        ref = model(ids, mask, types).numpy()
    pack(tmp_path / "bert.safetensors", tmp_path / "lossless.spc", layout="torch", model=spec)
    out = load_model(tmp_path / "lossless.spc")(**feed)
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-5
    pack(tmp_path / "bert.safetensors", tmp_path / "q.spc", layout="torch", model=spec,
         prune=50, quantize="kmeans:16", layers=r"encoder\..*\.weight$")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in
                           unpack(tmp_path / "q.spc").items()})
    with torch.no_grad():
        ref_q = model(ids, mask, types).numpy()
    out = load_model(tmp_path / "q.spc")(**feed)
    assert np.abs(out - ref_q).max() / np.abs(ref_q).max() < 1e-5
    assert np.abs(ref_q - ref).max() > 1e-3  # the quantization did change the model
    meta = json.loads(sc.open(tmp_path / "q.spc").metadata["sparsecodec.model"])
    assert meta == spec
