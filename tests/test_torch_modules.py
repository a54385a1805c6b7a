"""sparsecodec.torch: models on compressed weights (oracle: torch on the decoded weights),
saving and loading through the container, centroid fine-tuning (torch and NumPy), GWK with
real gradients."""

import json

import numpy as np
import pytest

import sparsecodec as sc
from sparsecodec.errors import FormatError, OptionError, ShapeError
from sparsecodec.pack import unpack

torch = pytest.importorskip("torch")
nn = torch.nn
sct = pytest.importorskip("sparsecodec.torch")
from sparsecodec.torch.examples import BertLike  # noqa: E402


class Block(nn.Module):
    """A residual block with batch norm and a depthwise + pointwise pair (MobileNet-like)."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        return torch.relu(x + self.pw(nn.functional.hardswish(self.dw(h))))


def cnn():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), Block(8),
                        nn.Conv2d(8, 16, 3, groups=2, dilation=2), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(16, 10))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
    return net.eval()


def mlp():
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(),
                         nn.Linear(32, 5)).eval()


def labelled_by_teacher(seed):
    """The float MLP, 256 inputs, its labels for them and the batches of 32 they make."""
    torch.manual_seed(seed)
    teacher = mlp()
    x = torch.randn(256, 20)
    y = teacher(x).argmax(1).detach()
    return teacher, x, y, [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]


def decoded_twin(make, path):
    """The architecture with the weights ``path`` holds, decoded (``unpack``)."""
    twin = make()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in unpack(path).items()})
    return twin


@pytest.mark.parametrize("make, x", [(mlp, (6, 20)), (cnn, (3, 3, 12, 12))])
def test_compressed_model_equals_torch_on_decoded_weights(tmp_path, make, x):
    x = torch.randn(*x)
    model = sct.compress(make(), prune=50, quantize="kmeans:8")
    kinds = {type(m).__name__ for m in model.modules()}
    assert "Linear" not in kinds and "Conv2d" not in kinds
    with torch.no_grad():
        out = model(x)
    size = sct.save_compressed(model, tmp_path / "m.spc")
    assert size == (tmp_path / "m.spc").stat().st_size
    with torch.no_grad():
        ref = decoded_twin(make, tmp_path / "m.spc")(x)
        assert (ref - make()(x)).abs().max() > 1e-3  # quantized: not the float model
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    loaded = sct.load_compressed(make(), tmp_path / "m.spc")
    with torch.no_grad():
        assert torch.equal(loaded(x), out)
    for m in sct.compressed_modules(loaded).values():  # every value is one of at most 8
        assert len(np.unique(m.encoded.decode()[m.encoded.decode() != 0])) <= 8


def test_bert_encoder_every_linear_compressed(tmp_path):
    """The goal's check, small: relative error against torch on the decoded weights, weight
    memory against the file's matrix bytes, save and load."""
    make = lambda: BertLike(vocab=200, hidden=64, layers=2, heads=4, inner=128,  # noqa: E731
                            positions=32).eval()
    torch.manual_seed(0)
    model = make()
    torch.manual_seed(0)
    ids = torch.randint(0, 200, (3, 16))
    mask = torch.ones(3, 16)
    mask[2, 10:] = 0
    sct.compress(model, prune=50, quantize="kmeans:16")
    assert len(sct.compressed_modules(model)) == 2 * 6
    with torch.no_grad():
        out = model(ids, mask)
    sct.save_compressed(model, tmp_path / "bert.spc")
    twin = make()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in
                          unpack(tmp_path / "bert.spc").items()})
    with torch.no_grad():
        ref = twin(ids, mask)
    assert ((out - ref).abs().max() / ref.abs().max()) < 1e-4
    f = sc.open(tmp_path / "bert.spc")
    matrix_bytes = sum(f[f"{n}.weight"].nbytes for n in sct.compressed_modules(model))
    held = sct.weight_bytes(model)["encoded"]
    assert matrix_bytes <= held <= 1.2 * matrix_bytes
    loaded = sct.load_compressed(make(), tmp_path / "bert.spc")
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask), out)


def test_entropy_coded_layers_hold_little_beyond_their_bytes():
    """sham_ans keeps its rANS decoding tables beside the stream: one symbol per slot, so a
    384x1536 layer holds 1.10x its bytes (a uint64 entry per slot held 1.67x)."""
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(384, 1536))
    nn.init.normal_(layer[0].weight, std=0.02)  # BertModel's initialisation
    sct.compress(layer, prune=50, quantize="kmeans:16", format="sham_ans")
    enc = layer[0].encoded
    with torch.no_grad():
        layer(torch.randn(4, 384))  # whatever the product caches counts too
    assert sct.weight_bytes(layer)["encoded"] <= 1.2 * enc.nbytes


def test_settings_per_module_and_errors():
    model = sct.compress(mlp(), prune=50, quantize="kmeans:4",
                         settings={"4": None, "2": {"quantize": "kmeans:16", "prune": None}})
    assert isinstance(model[4], nn.Linear) and isinstance(model[0], sct.CompressedLinear)
    w2 = model[2].encoded.decode()
    assert (w2 != 0).all() and 4 < len(np.unique(w2)) <= 16
    assert len(np.unique(model[0].encoded.decode())) <= 5  # 4 values and zero
    with pytest.raises(OptionError, match="no module"):
        sct.compress(mlp(), settings={"nothing.here": None})
    with pytest.raises(OptionError, match="data and loss_fn"):
        sct.compress(mlp(), quantize="gwk:8")
    bad = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"))
    with pytest.raises(Exception, match="zero padding"):
        sct.compress(bad)


def test_gwk_uses_the_real_gradients():
    torch.manual_seed(3)
    model = mlp()
    data = [(torch.randn(16, 20), torch.randint(0, 5, (16,))) for _ in range(3)]
    loss = nn.functional.cross_entropy
    imp = sct.gradient_importance(model, loss, data)
    # the oracle: autograd's gradient summed by hand
    g = torch.zeros_like(model[0].weight)
    for x, y in data:
        model.zero_grad()
        loss(model(x), y).backward()
        g += model[0].weight.grad ** 2
    np.testing.assert_allclose(imp["0"], g.numpy().T, rtol=1e-5)
    model.zero_grad(set_to_none=True)
    assert model[0].weight.grad is None  # gradient_importance cleans up after itself
    sct.compress(model, quantize="gwk:8", data=data, loss_fn=loss)
    assert len(np.unique(model[0].encoded.decode())) <= 8


def test_shared_value_gradients_are_the_summed_member_gradients():
    """Autograd through codebook[labels] is Deep Compression's rule
    (quantize.centroid_gradients)."""
    model = sct.compress(mlp(), prune=50, quantize="kmeans:8")
    shared = sct.SharedWeight(model[2])
    x = torch.randn(4, 32)
    w = shared.weight().detach().requires_grad_(True)
    (nn.functional.linear(x, w, shared.bias) ** 2).sum().backward()
    (nn.functional.linear(x, shared.weight(), shared.bias) ** 2).sum().backward()
    want = sc.quantize.centroid_gradients(w.grad.numpy(), shared.labels.numpy(),
                                          shared.codebook.numel())
    np.testing.assert_allclose(shared.codebook.grad.numpy(), want, rtol=1e-5, atol=1e-6)


def test_finetune_recovers_and_keeps_masks_and_sharing():
    teacher, x, y, data = labelled_by_teacher(4)
    model = sct.compress(mlp(), prune=80, quantize="kmeans:4")
    before = {n: m.encoded.decode() for n, m in sct.compressed_modules(model).items()}

    def accuracy():
        with torch.no_grad():
            return (model(x).argmax(1) == y).float().mean().item()

    acc0 = accuracy()
    history = sct.finetune(model, nn.functional.cross_entropy, data, epochs=15, lr=1e-2,
                           teacher=teacher)
    assert history[-1] < history[0] and accuracy() > acc0
    for n, m in sct.compressed_modules(model).items():
        W, W0 = m.encoded.decode(), before[n]
        assert np.array_equal(W != 0, W0 != 0)  # the mask
        # the assignment: entries that shared a value still share one, and no more values
        for v in np.unique(W0[W0 != 0]):
            assert len(np.unique(W[W0 == v])) == 1
        assert len(np.unique(W[W != 0])) <= len(np.unique(W0[W0 != 0]))
    with pytest.raises(OptionError, match="no compressed module"):
        sct.finetune(mlp(), nn.functional.cross_entropy, data)
    with pytest.raises(OptionError, match="alpha"):
        sct.finetune(model, nn.functional.cross_entropy, data, teacher=teacher, alpha=2)
    # re-assignment moves weights between values, but keeps the mask and the value count
    before = {n: m.encoded.decode() for n, m in sct.compressed_modules(model).items()}
    sct.finetune(model, nn.functional.cross_entropy, data, epochs=4, lr=0.2, reassign=True)
    moved = 0
    for n, m in sct.compressed_modules(model).items():
        W, W0 = m.encoded.decode(), before[n]
        assert np.array_equal(W != 0, W0 != 0)
        assert len(np.unique(W[W != 0])) <= len(np.unique(W0[W0 != 0]))
        moved += sum(len(np.unique(W[W0 == v])) > 1 for v in np.unique(W0[W0 != 0]))
    assert moved > 0


def test_prune_retrain_holds_the_mask_and_recovers():
    teacher, x, y, data = labelled_by_teacher(5)
    model = mlp()
    history = sct.prune_retrain(model, 80, nn.functional.cross_entropy, data, epochs=10,
                                lr=1e-2, teacher=teacher)
    assert history[-1] < history[0]
    for m, m0 in zip(model, teacher, strict=True):
        if isinstance(m, nn.Linear):
            w, w0 = m.weight.detach().numpy(), m0.weight.detach().numpy()
            kept = sc.quantize.prune(w0, 80).mask  # the magnitude mask of the float weights
            assert np.array_equal(w != 0, kept) and not np.array_equal(w[kept], w0[kept])
    sct.compress(model, quantize="kmeans:8")  # the zeros stay zeros
    for m, m0 in zip(model, teacher, strict=True):
        if isinstance(m, sct.CompressedLinear):
            W = m.encoded.decode().T
            assert np.array_equal(W != 0, sc.quantize.prune(m0.weight.detach().numpy(),
                                                            80).mask)
    with pytest.raises(OptionError, match="no nn.Linear"):
        sct.prune_retrain(nn.Sequential(nn.ReLU()), 50, nn.functional.cross_entropy, data)


def test_load_compressed_refuses_what_does_not_fit(tmp_path):
    model = sct.compress(mlp(), quantize="kmeans:8")
    sct.save_compressed(model, tmp_path / "m.spc")
    with pytest.raises(FormatError, match="missing|unexpected|not in the model"):
        sct.load_compressed(nn.Sequential(nn.Linear(20, 32)), tmp_path / "m.spc")
    with pytest.raises(FormatError, match="Conv2d in the model"):
        sct.load_compressed(nn.Sequential(nn.Conv2d(20, 32, 1), nn.ReLU(), nn.Linear(32, 32),
                                          nn.GELU(), nn.Linear(32, 5)), tmp_path / "m.spc")
    sc.save(tmp_path / "plain.spc", {"w": sc.encode(np.eye(3, dtype=np.float32))})
    with pytest.raises(FormatError, match="save_compressed"):
        sct.load_compressed(mlp(), tmp_path / "plain.spc")
    # a hostile module list
    f = sc.open(tmp_path / "m.spc")
    tensors = {n: f[n] for n in f}
    meta = dict(f.metadata)
    meta["sparsecodec.torch"] = json.dumps({"version": 1, "modules": {
        "0": {"kind": "conv2d", "kernel_size": [3, -1], "stride": [1, 1], "padding": [0, 0],
              "dilation": [1, 1], "groups": 1}}})
    sc.save(tmp_path / "bad.spc", tensors, metadata=meta)
    with pytest.raises(FormatError, match="not a linear or conv2d"):
        sct.load_compressed(mlp(), tmp_path / "bad.spc")


def test_numpy_finetune_recovers_the_demo_mlp():
    from sparsecodec import quantize as qz
    from sparsecodec.runtime import build
    from sparsecodec.tune.examples import MLP_SPEC, digits_mlp
    from sparsecodec.tune.finetune import finetune_centroids

    ex = digits_mlp()
    q = dict(ex.tensors)
    for n in ("fc1.weight", "fc2.weight", "fc3.weight"):
        W = qz.prune(q[n], 90).weights
        m = W != 0
        W[m] = qz.kmeans(W[m], 16).values
        q[n] = W

    def acc(t):
        return (build(MLP_SPEC, t, dense=True)(ex.x).argmax(1) == ex.y).mean()

    r = finetune_centroids(MLP_SPEC, q, ex.x_train, ex.y_train, epochs=6, lr=1e-2,
                           validation=(ex.x, ex.y))
    assert acc(r.tensors) > acc(q) + 0.05 and r.loss[-1] < r.loss[0]
    assert r.accuracy[-1] == acc(r.tensors)
    for n in ("fc1.weight", "fc2.weight", "fc3.weight"):
        W, W0 = r.tensors[n], q[n]
        assert W.dtype == W0.dtype and np.array_equal(W != 0, W0 != 0)
        for v in np.unique(W0[W0 != 0]):
            assert len(np.unique(W[W0 == v])) == 1
    with pytest.raises(OptionError, match="chains of linear"):
        finetune_centroids([{"type": "conv2d", "weight": "fc1.weight"}], q, ex.x_train,
                           ex.y_train)
    with pytest.raises(ShapeError):
        finetune_centroids(MLP_SPEC, q, ex.x_train, ex.y_train[:5])
