"""Keras HDF5 (with h5py only) and PyTorch state dicts (when torch is installed): pack,
unpack into a copy of the framework's file, reload with the framework, compare outputs."""

import h5py
import numpy as np
import pytest

from sparsecodec import quantize as qz
from sparsecodec import runtime
from sparsecodec.cli import main
from sparsecodec.pack import pack, unpack


def keras_like_h5(path, rng):
    """A legacy Keras full-model layout: model_weights/<layer>/<layer>/kernel:0 + attrs."""
    W = rng.standard_normal((8, 4)).astype(np.float32)
    K = rng.standard_normal((3, 3, 2, 5)).astype(np.float32)  # HWIO
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["model_config"] = '{"class_name": "Sequential"}'
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [b"conv", b"dense"]
        for layer, arrays in (("conv", {"kernel:0": K, "bias:0": np.zeros(5, np.float32)}),
                              ("dense", {"kernel:0": W, "bias:0": np.ones(4, np.float32)})):
            g = mw.create_group(layer)
            g.attrs["weight_names"] = [f"{layer}/{n}".encode() for n in arrays]
            inner = g.create_group(layer)
            for n, a in arrays.items():
                inner.create_dataset(n, data=a)
    return {"conv": K, "dense": W}


def test_keras_h5_round_trip_keeps_structure(tmp_path, capsys):
    rng = np.random.default_rng(0)
    keras_like_h5(tmp_path / "model.h5", rng)
    assert main(["pack", str(tmp_path / "model.h5"), "-o", str(tmp_path / "m.spc"),
                 "--layout", "keras", "--quantize", "kmeans:4"]) == 0
    assert "dense/dense/kernel:0" in capsys.readouterr().out
    assert main(["unpack", str(tmp_path / "m.spc"), "-o", str(tmp_path / "back.h5"),
                 "--template", str(tmp_path / "model.h5")]) == 0
    q = unpack(tmp_path / "m.spc")
    with h5py.File(tmp_path / "model.h5") as a, h5py.File(tmp_path / "back.h5") as b:
        assert dict(a.attrs) == dict(b.attrs)
        assert [str(v, "utf-8") if isinstance(v, bytes) else v
                for v in b["model_weights"].attrs["layer_names"]] == ["conv", "dense"]
        k = "model_weights/dense/dense/kernel:0"
        assert np.array_equal(b[k][()], q[k]) and np.unique(b[k][()]).size <= 4
        c = "model_weights/conv/conv/kernel:0"
        assert b[c].shape == (3, 3, 2, 5) and np.unique(b[c][()]).size <= 4
        hwio = a[c][()]  # the quantizer's own output, in the file's HWIO layout
        own = qz.matrix_to_conv(qz.kmeans(qz.conv_to_matrix(hwio, "HWIO"), 4).values,
                                hwio.shape, "HWIO")
        assert np.array_equal(b[c][()].view(np.uint32), own.view(np.uint32))
    # a sparsecodec HDF5 file is still read as one of ours, not as a Keras file
    assert main(["pack", str(tmp_path / "m.spc"), "-o", str(tmp_path / "again.h5")]) == 0
    assert main(["info", str(tmp_path / "again.h5")]) == 0
    capsys.readouterr()
    assert main(["unpack", str(tmp_path / "m.spc"), "-o", str(tmp_path / "x.h5")]) == 2
    assert "template" in capsys.readouterr().err


def test_torch_sequential_packed_and_run(tmp_path):
    torch = pytest.importorskip("torch")
    from sparsecodec.adapters.torch_file import sequential_spec
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(64, 10), torch.nn.Softmax(dim=1))
    torch.save(net.state_dict(), tmp_path / "net.pt")
    x = torch.randn(5, 3, 8, 8)
    # lossless: unpacked weights load into the framework and give the very same outputs
    assert main(["pack", str(tmp_path / "net.pt"), "-o", str(tmp_path / "n.spc"),
                 "--layout", "torch"]) == 0
    assert main(["unpack", str(tmp_path / "n.spc"), "-o", str(tmp_path / "back.pt")]) == 0
    twin = torch.nn.Sequential(*[type(m)(*a) if a else m for m, a in (
        (net[0], ()), (net[1], ()), (net[2], ()), (net[3], ()), (net[4], ()), (net[5], ()))])
    twin.load_state_dict(torch.load(tmp_path / "back.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(twin(x), net(x))
    # compressed: the runtime on encoded weights matches torch on the quantized weights
    tensors = {k: v.numpy() for k, v in net.state_dict().items()}
    pack(tensors, tmp_path / "q.spc", prune=50, quantize="kmeans:8", layout="torch",
         model=sequential_spec(net))
    q = unpack(tmp_path / "q.spc")
    net.load_state_dict({k: torch.from_numpy(v) for k, v in q.items()})
    with torch.no_grad():
        ref = net(x).double().numpy()
    np.testing.assert_allclose(runtime.load_model(tmp_path / "q.spc")(x.numpy()), ref,
                               rtol=1e-5, atol=1e-6)


def test_real_keras_model_round_trip(tmp_path, monkeypatch):
    """With Keras 3 installed (any backend; torch is tried first), a Sequential model's weight
    files are packed, unpacked into a copy, and reloaded by Keras itself."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")

    def build():
        return keras.Sequential([keras.Input((8,)),
                                 keras.layers.Dense(16, activation="relu", name="d1"),
                                 keras.layers.Dense(4, name="d2")])

    model = build()
    x = np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32)
    for fname, load in (("m.weights.h5", "load_weights"), ("full.h5", None)):
        if load is None:
            model.save(tmp_path / fname)
        else:
            model.save_weights(tmp_path / fname)
        assert main(["pack", str(tmp_path / fname), "-o", str(tmp_path / "k.spc"),
                     "--layout", "keras", "--quantize", "kmeans:8"]) == 0
        out = tmp_path / f"back.{fname}"
        assert main(["unpack", str(tmp_path / "k.spc"), "-o", str(out),
                     "--template", str(tmp_path / fname)]) == 0
        q = unpack(tmp_path / "k.spc")
        kernels = sorted((k for k, v in q.items() if v.ndim == 2), key=lambda k: q[k].shape)
        biases = {q[k].shape[0]: q[k] for k in q if q[k].ndim == 1}
        W1 = next(q[k] for k in kernels if q[k].shape == (8, 16))
        W2 = next(q[k] for k in kernels if q[k].shape == (16, 4))
        ref = np.maximum(x @ W1 + biases[16], 0) @ W2 + biases[4]
        again = keras.saving.load_model(out) if load is None else build()
        if load is not None:
            again.load_weights(out)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), ref, rtol=1e-5,
                                   atol=1e-5)
        assert np.unique(W1).size <= 8


def test_keras_cnn_runs_compressed_from_its_packed_file(tmp_path):
    """pack describes a Keras Sequential CNN (from its model_config) and the runtime runs it
    on the encoded weights, NHWC images in, like Keras on the quantized weights."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
        keras.layers.MaxPooling2D(2, name="p1"), keras.layers.Flatten(name="f"),
        keras.layers.Dropout(0.5, name="drop"),
        keras.layers.Dense(10, activation="softmax", name="d")])
    model.save(tmp_path / "cnn.h5")
    assert main(["pack", str(tmp_path / "cnn.h5"), "-o", str(tmp_path / "cnn.spc"),
                 "--layout", "keras", "--quantize", "kmeans:8"]) == 0
    assert main(["unpack", str(tmp_path / "cnn.spc"), "-o", str(tmp_path / "q.h5"),
                 "--template", str(tmp_path / "cnn.h5")]) == 0
    x = np.random.default_rng(4).standard_normal((3, 8, 8, 3)).astype(np.float32)
    ref = keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "q.h5")(x))
    np.testing.assert_allclose(runtime.load_model(tmp_path / "cnn.spc")(x), ref, rtol=1e-5,
                               atol=1e-6)
