"""Layers on encoded weights against plain numpy on the decoded ones, and a packed model run
end to end."""

import math

import numpy as np
import pytest

import sparsecodec as sc
from sparsecodec import quantize as qz
from sparsecodec import runtime as rt
from sparsecodec.pack import pack, unpack


def conv_reference(x, K, b, stride, pad):
    """Direct cross-correlation with an OIHW kernel, loop over kernel offsets."""
    N, C, H, W = x.shape
    out, _, kh, kw = K.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    y = np.zeros((N, out, Ho, Wo))
    for dy in range(kh):
        for dx in range(kw):
            win = xp[:, :, dy:dy + stride * Ho:stride, dx:dx + stride * Wo:stride]
            y += np.einsum("nchw,oc->nohw", win, K[:, :, dy, dx])
    return y + b[None, :, None, None]


@pytest.mark.parametrize("fmt", ["sham", "ham", "csr", "cer", "dense"])
def test_linear_matches_numpy(fmt):
    rng = np.random.default_rng(0)
    W = qz.kmeans(qz.prune(rng.standard_normal((40, 24)), 70).weights, 8).values.astype(
        np.float32)
    b = rng.standard_normal(24)
    layer = rt.CompressedLinear(sc.encode(W, format=fmt), b, "relu")
    X = rng.standard_normal((5, 40))
    np.testing.assert_allclose(layer(X), np.maximum(X @ W.astype(np.float64) + b, 0),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer(X[0]), layer(X)[0], rtol=1e-12)


@pytest.mark.parametrize("stride, pad", [(1, 0), (1, 1), (2, 1)])
def test_conv_matches_direct_convolution(stride, pad):
    rng = np.random.default_rng(1)
    K = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5)
    x = rng.standard_normal((2, 3, 9, 8))
    enc = sc.encode(qz.conv_to_matrix(K), format="dense")
    conv = rt.CompressedConv2d(enc, 3, b, stride, pad)
    np.testing.assert_allclose(conv(x), conv_reference(x, K.astype(np.float64), b, stride, pad),
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(sc.ShapeError):
        conv(x[:, :2])


def test_pool_flatten_activations():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4)
    assert rt.Pool2d("max", 2)(x)[0, 0].tolist() == [[5, 7], [13, 15]]
    assert rt.Pool2d("avg", 2)(x)[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert rt.Flatten()(x).shape == (2, 16)
    s = rt.activate(np.array([[1.0, 2.0, 3.0]]), "softmax")
    assert s.sum() == pytest.approx(1.0) and s.argmax() == 2
    assert rt.activate(np.array([1.0]), "gelu")[0] == pytest.approx(
        0.5 * (1 + math.erf(1 / math.sqrt(2))))
    with pytest.raises(sc.OptionError, match="unknown activation"):
        rt.Activation("swish")


def small_cnn(seed=0):
    rng = np.random.default_rng(seed)
    return {"conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) / 3,  # OIHW
            "conv.bias": rng.standard_normal(4).astype(np.float32),
            "fc.weight": rng.standard_normal((10, 64)).astype(np.float32) / 8,  # (out, in)
            "fc.bias": rng.standard_normal(10).astype(np.float32)}


SPEC = [{"type": "conv2d", "weight": "conv.weight", "bias": "conv.bias", "kernel_size": 3,
         "padding": 1, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "weight": "fc.weight", "bias": "fc.bias", "activation": "softmax"}]


def reference_cnn(t, x):
    y = np.maximum(conv_reference(x, t["conv.weight"].astype(np.float64),
                                  t["conv.bias"].astype(np.float64), 1, 1), 0)
    y = rt.Pool2d("max", 2)(y).reshape(x.shape[0], -1)
    return rt.activate(y @ t["fc.weight"].T.astype(np.float64) + t["fc.bias"], "softmax")


def test_packed_model_runs_on_compressed_weights(tmp_path):
    t = small_cnn()
    pack(t, tmp_path / "cnn.spc", prune=50, quantize="kmeans:8", layout="torch", model=SPEC)
    model = rt.load_model(tmp_path / "cnn.spc")
    x = np.random.default_rng(2).standard_normal((3, 3, 8, 8))
    restored = unpack(tmp_path / "cnn.spc")  # the quantized weights, back in torch layout
    np.testing.assert_allclose(model(x), reference_cnn(restored, x), rtol=1e-9, atol=1e-12)
    assert all(isinstance(L.weight, sc.Encoded) for L in model.layers if hasattr(L, "weight"))
    dense = sum(a.nbytes for a in t.values())
    assert model.nbytes < dense / 2


def test_model_description_errors(tmp_path):
    t = small_cnn()
    pack(t, tmp_path / "plain.spc")
    with pytest.raises(sc.FormatError, match="no model description"):
        rt.load_model(tmp_path / "plain.spc")
    import json

    tensors = sc.load(tmp_path / "plain.spc")
    for spec, message in (([{"type": "lstm"}], "unknown type"),
                          ([{"type": "linear", "weight": "nope"}], "missing"),
                          ([{"type": "linear", "weight": "fc.bias"}], "not an encoded")):
        # written directly: pack itself refuses the first two (below)
        sc.save(tmp_path / "bad.spc", tensors, metadata={"sparsecodec.model": json.dumps(spec)})
        with pytest.raises(sc.FormatError, match=message):
            rt.load_model(tmp_path / "bad.spc")


def test_pack_checks_a_model_description_first(tmp_path, capsys):
    """pack(model=...) and pack --model FILE refuse unknown layer types and tensor names
    before encoding anything; a good description file makes a runnable pack."""
    import json

    from sparsecodec.cli import main

    t = small_cnn()
    for spec, message in (([{"type": "lstm"}], "type 'lstm' is not one of"),
                          ([{"type": "linear", "weight": "nope"}], "weight 'nope' is not a"),
                          ([{"type": "linear", "weight": "fc.weight", "bias": "b"}], "bias 'b'"),
                          ({"type": "flatten"}, "non-empty list"), ([], "non-empty list")):
        with pytest.raises(sc.FormatError, match=message):
            pack(t, tmp_path / "bad.spc", model=spec)
        assert not (tmp_path / "bad.spc").exists()
    np.savez(tmp_path / "cnn.npz", **t)
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    (tmp_path / "bad.json").write_text('[{"type": "conv3d"}]')
    assert main(["pack", str(tmp_path / "cnn.npz"), "-o", str(tmp_path / "c.spc"), "--layout",
                 "torch", "--quantize", "kmeans:8", "--model", str(tmp_path / "bad.json")]) == 2
    assert "conv3d" in capsys.readouterr().err
    assert main(["pack", str(tmp_path / "cnn.npz"), "-o", str(tmp_path / "c.spc"), "--layout",
                 "torch", "--quantize", "kmeans:8", "--model", str(tmp_path / "spec.json")]) == 0
    x = np.random.default_rng(2).standard_normal((3, 3, 8, 8))
    np.testing.assert_allclose(rt.load_model(tmp_path / "c.spc")(x),
                               reference_cnn(unpack(tmp_path / "c.spc"), x), rtol=1e-9,
                               atol=1e-12)


def test_runtime_never_materialises_the_dense_weights():
    """Peak Python-side allocation during a forward pass stays far below one dense copy."""
    import tracemalloc

    from sparsecodec.examples import pruned_quantized_layer
    W = pruned_quantized_layer(2048, 2048, 0.05, 16)
    layer = rt.CompressedLinear(sc.encode(W, format="sham"), None, "relu")
    x = np.random.default_rng(0).standard_normal((4, 2048))
    layer(x)  # compile and warm up outside the measurement
    tracemalloc.start()
    layer(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < W.nbytes / 20  # 16 MiB dense; a forward pass allocates well under 1 MiB


@pytest.mark.parametrize("name, torch_fn", [
    ("tanh", "tanh"), ("sigmoid", "sigmoid"), ("gelu", "gelu"), ("relu", "relu"),
    ("softmax", "softmax"), ("linear", None)])
def test_activations_match_torch(name, torch_fn):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((4, 7)) * 4
    fn = {"softmax": lambda t: torch.softmax(t, -1), None: lambda t: t}.get(
        torch_fn, getattr(torch.nn.functional, torch_fn or "relu"))
    want = fn(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(rt.Activation(name)(x), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind, kernel, stride", [("avg", 2, None), ("avg", 3, 1),
                                                  ("max", 3, 2), ("avg", (2, 3), (1, 2))])
def test_pooling_matches_torch(kind, kernel, stride):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal((2, 3, 9, 8))
    pool = torch.nn.functional.avg_pool2d if kind == "avg" else torch.nn.functional.max_pool2d
    want = pool(torch.from_numpy(x), kernel, stride).numpy()
    np.testing.assert_allclose(rt.Pool2d(kind, kernel, stride)(x), want, rtol=1e-12)


def test_flatten_orders():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # (N, C, H, W)
    assert np.array_equal(rt.Flatten()(x), x.reshape(2, 60))
    nhwc = rt.Flatten(channels_last=True)(x)  # Keras order: (H, W, C) per sample
    assert np.array_equal(nhwc[1], np.transpose(x[1], (1, 2, 0)).ravel())
    assert nhwc[0, :3].tolist() == [x[0, 0, 0, 0], x[0, 1, 0, 0], x[0, 2, 0, 0]]
