"""Train the second example model: a small CNN (2 conv + 2 fc) on scikit-learn's 8x8 digits,
with PyTorch on the CPU.

    python -m pip install scikit-learn torch && python examples/train_digits_cnn.py

Writes ``sparsecodec/data/digits_cnn.npz``: the weights in PyTorch's layout (``conv*.weight``
(out, in, kh, kw), ``fc*.weight`` (out, in), biases), the layer list the runtime runs
(``spec``, JSON, for tensors packed with ``layout="torch"``), and 256 training digits
(``x_calib``, uint8 pixels 0..16) for calibration-aware quantization. The test split is the
360 digits of ``digits_mlp.npz`` (the same seed-0 permutation), so both models are scored on
the same held-out digits. Deterministic (seed 0, one thread).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "sparsecodec" / "data" / "digits_cnn.npz"
SPEC = [
    {"type": "conv2d", "weight": "conv1.weight", "bias": "conv1.bias", "kernel_size": 3,
     "padding": 1, "activation": "relu"},
    {"type": "conv2d", "weight": "conv2.weight", "bias": "conv2.bias", "kernel_size": 3,
     "padding": 1, "activation": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "linear", "weight": "fc1.weight", "bias": "fc1.bias", "activation": "relu"},
    {"type": "linear", "weight": "fc2.weight", "bias": "fc2.bias"},
]


def main() -> None:
    import torch
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    torch.set_num_threads(1)
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:360], order[360:]
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(512, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    xt = torch.from_numpy(X[train]).reshape(-1, 1, 8, 8)
    yt = torch.from_numpy(y[train])
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        for idx in torch.randperm(len(yt), generator=g).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = net(torch.from_numpy(X[test]).reshape(-1, 1, 8, 8)).argmax(1).numpy()
    print(f"test accuracy {(pred == y[test]).mean():.4f} on {len(test)} held-out digits")
    names = ["conv1", "conv2", "fc1", "fc2"]
    mods = [net[0], net[2], net[6], net[8]]
    tensors = {}
    for n, m in zip(names, mods, strict=True):
        tensors[f"{n}.weight"] = m.weight.detach().numpy().astype(np.float32)
        tensors[f"{n}.bias"] = m.bias.detach().numpy().astype(np.float32)
    np.savez(OUT, **tensors, spec=np.array(json.dumps(SPEC)),
             x_calib=digits.data[train[:256]].astype(np.uint8))
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
