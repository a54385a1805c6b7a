"""Train the built-in example model: an MLP on scikit-learn's 8x8 digits, in plain numpy.

    python -m pip install scikit-learn && python examples/train_digits.py

Writes ``sparsecodec/data/digits_mlp.npz``: the weights (``fc*.weight`` as (inputs, outputs)
matrices, ``fc*.bias``), the held-out test split (``x_test`` as uint8 pixel values 0..16,
``y_test``) and the training split (``x_train``, ``y_train``: the demo fine-tunes on it), so
that ``sparsecodec demo`` needs nothing else. scikit-learn is needed only here,
to read the digits it ships; the package never imports it. Deterministic (seed 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "sparsecodec" / "data" / "digits_mlp.npz"
SIZES = (64, 256, 256, 10)


def forward(Ws, bs, x):
    acts = [x]
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        z = acts[-1] @ W + b
        acts.append(np.maximum(z, 0) if i < len(Ws) - 1 else z)
    return acts


def train(X: np.ndarray, y: np.ndarray, epochs: int = 60,
          rng: np.random.Generator | int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights and biases of the MLP (``SIZES``) trained on ``X`` (pixels scaled to [0, 1])
    and labels ``y`` by momentum SGD on the cross-entropy; deterministic for a seed (or a
    generator, which ``main`` shares with its test split, as the shipped model was made)."""
    rng = np.random.default_rng(rng)
    Ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32)
          for a, b in zip(SIZES[:-1], SIZES[1:], strict=True)]
    bs = [np.zeros(b, np.float32) for b in SIZES[1:]]
    vW = [np.zeros_like(w) for w in Ws]
    vb = [np.zeros_like(b) for b in bs]
    lr, mom, batch, decay = 0.05, 0.9, 32, 1e-4
    for _ in range(epochs):
        perm = rng.permutation(len(y))
        for s in range(0, len(perm), batch):
            idx = perm[s:s + batch]
            acts = forward(Ws, bs, X[idx])
            z = acts[-1]
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1
            g = p / len(idx)
            for i in range(len(Ws) - 1, -1, -1):
                gW = acts[i].T @ g + decay * Ws[i]
                gb = g.sum(axis=0)
                if i:
                    g = (g @ Ws[i].T) * (acts[i] > 0)
                vW[i] = mom * vW[i] - lr * gW
                vb[i] = mom * vb[i] - lr * gb
                Ws[i] += vW[i]
                bs[i] += vb[i]
    return Ws, bs


def main() -> None:
    from sklearn.datasets import load_digits  # only here: the package never needs it

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    test, train_idx = order[:360], order[360:]
    Ws, bs = train(X[train_idx], y[train_idx], rng=rng)
    acc = (forward(Ws, bs, X[test])[-1].argmax(axis=1) == y[test]).mean()
    print(f"test accuracy {acc:.4f} on {len(test)} held-out digits")
    tensors = {f"fc{i + 1}.weight": W for i, W in enumerate(Ws)}
    tensors |= {f"fc{i + 1}.bias": b for i, b in enumerate(bs)}
    np.savez(OUT, **tensors, x_test=digits.data[test].astype(np.uint8), y_test=y[test],
             x_train=digits.data[train_idx].astype(np.uint8), y_train=y[train_idx])
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
