"""Centroid fine-tuning in NumPy, for the runtime's chains of linear layers (the demo's MLP):
Deep Compression's retraining step. Each quantized weight matrix keeps its pruning mask and
its codebook assignment; the shared values are trained by Adam on the summed gradients of
their members (``quantize.centroid_gradients``), the biases by their own gradients. A
teacher's logits add a distillation term. PyTorch models: ``sparsecodec.torch.finetune``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import OptionError, ShapeError
from ..quantize import centroid_gradients
from ..runtime.layers import activate

_DERIVATIVES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    # d activation / d pre-activation, from the pre-activation z and the output a
    "linear": lambda z, a: np.ones_like(z),
    "relu": lambda z, a: (z > 0).astype(z.dtype),
    "tanh": lambda z, a: 1 - a * a,
    "sigmoid": lambda z, a: a * (1 - a),
}


def nearest_labels(codebook: np.ndarray, labels: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``labels`` with every unpruned entry (label >= 0) relabelled by the codebook value
    nearest to its entry of ``W``; pruned entries stay -1."""
    order = np.argsort(codebook)
    c = codebook[order]
    near = order[np.searchsorted((c[1:] + c[:-1]) / 2, W)]
    return np.where(labels >= 0, near, -1)


@dataclass
class Shared:
    """A weight array as its codebook (its distinct nonzero values, ascending) and labels
    (-1 where the entry is zero): what centroid fine-tuning trains and keeps fixed."""

    codebook: np.ndarray
    labels: np.ndarray
    dtype: np.dtype

    @classmethod
    def of(cls, W: np.ndarray) -> Shared:
        """The codebook and labels of ``W``."""
        nz = W != 0
        values, inverse = np.unique(W[nz], return_inverse=True)
        labels = np.full(W.shape, -1, np.int64)
        labels[nz] = inverse
        return cls(values.astype(np.float64), labels, W.dtype)

    def nearest(self, W: np.ndarray) -> None:
        """Relabel every unpruned entry by the codebook value nearest to ``W``'s."""
        self.labels = nearest_labels(self.codebook, self.labels, W)

    def matrix(self) -> np.ndarray:
        W = np.where(self.labels >= 0, self.codebook[np.maximum(self.labels, 0)], 0.0)
        return W.astype(self.dtype)


@dataclass
class Finetuned:
    """The result: ``tensors`` (the input tensors with trained weights and biases, same
    dtypes, masks and assignments), and per epoch the mean ``loss`` and, with validation
    data, the ``accuracy``."""

    tensors: dict[str, np.ndarray]
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


class _Adam:
    def __init__(self, lr: float, shapes: Sequence[tuple[int, ...]]):
        self.lr, self.t = lr, 0
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mh = m / (1 - b1 ** self.t)
            vh = v / (1 - b2 ** self.t)
            p -= self.lr * mh / (np.sqrt(vh) + 1e-8)


def _chain(spec: Sequence[Mapping[str, Any]]) -> list[tuple[str, str | None, str]]:
    """(weight, bias, activation) of each layer of a chain of linear layers."""
    out = []
    for i, L in enumerate(spec):
        kind = L.get("type")
        if kind != "linear" or L.get("input") is not None or L.get("name") is not None:
            raise OptionError(f"layer {i}: NumPy fine-tuning runs chains of linear layers "
                              f"(found {kind!r}); use sparsecodec.torch.finetune for others")
        act = L.get("activation", "linear")
        if act not in _DERIVATIVES and not (act == "softmax" and i == len(spec) - 1):
            raise OptionError(f"layer {i}: activation {act!r} is not supported here "
                              f"({', '.join(_DERIVATIVES)}; softmax last)")
        out.append((L["weight"], L.get("bias"), act))
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def finetune_centroids(spec: Sequence[Mapping[str, Any]], tensors: Mapping[str, Any],
                       x: Any, y: Any, epochs: int = 5, lr: float = 1e-3, batch: int = 32,
                       teacher: Any = None, alpha: float = 0.5, temperature: float = 2.0,
                       train_bias: bool = True, validation: tuple[Any, Any] | None = None,
                       reassign: bool = False, seed: int = 0) -> Finetuned:
    """Train the shared values of a chain of linear layers (``spec`` as the runtime takes
    it; weights (inputs, outputs) in ``tensors``, already pruned and quantized) on inputs
    ``x`` and integer labels ``y`` by the softmax cross-entropy of the last layer's
    pre-activation. ``teacher``: the float model's logits for ``x`` (an array), mixed in as
    ``alpha * CE + (1 - alpha) * T^2 KL(teacher || student)`` at ``temperature``. Masks and
    assignments stay fixed, so the result encodes to about the same size. ``validation``:
    ``(x, y)`` scored after each epoch. ``reassign``: every unpruned weight also keeps a
    float copy, trained by its own gradient (straight through the quantization), and after
    each epoch takes the label of the shared value nearest to it (the mask stays fixed)."""
    layers = _chain(spec)
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
        raise ShapeError(f"x must be (samples, features) and y integer labels of its length; "
                         f"got {x.shape} and {y.shape} {y.dtype}")
    if not 0 <= alpha <= 1 or epochs < 1 or batch < 1 or lr <= 0:
        raise OptionError("alpha must lie in [0, 1]; epochs, batch and lr must be positive")
    t_logits = None
    if teacher is not None:
        t_logits = np.asarray(teacher, np.float64)
        if t_logits.shape[0] != x.shape[0]:
            raise ShapeError(f"teacher logits must have a row per sample, got {t_logits.shape}")
    shared = [Shared.of(np.asarray(tensors[w])) for w, _, _ in layers]
    biases = [None if b is None else np.asarray(tensors[b], np.float64).copy()
              for _, b, _ in layers]
    params = [s.codebook for s in shared]
    params += [b for b in biases if b is not None and train_bias]
    latent = [sh.matrix().astype(np.float64) for sh in shared] if reassign else []
    # the float copies move at a tenth of the rate: a step of lr per batch would carry a
    # weight across several shared values' boundaries within an epoch
    opt_latent = _Adam(lr / 10, [a.shape for a in latent])
    opt = _Adam(lr, [p.shape for p in params])
    rng = np.random.default_rng(seed)
    result = Finetuned({})

    def forward(xb: np.ndarray, Ws: list[np.ndarray]) -> tuple[list[np.ndarray], list]:
        acts, pres = [xb], []
        for (_, _, act), W, b in zip(layers, Ws, biases, strict=True):
            z = acts[-1] @ W + (0 if b is None else b)
            pres.append(z)
            acts.append(z if act in ("linear", "softmax") else activate(z, act))
        return acts, pres

    # the products are batch-sized: OpenBLAS's threads only cost here, and on busy cores they
    # spin (2 epochs of the demo's fine-tuning took 7.0 s against 0.55 s on one thread, with
    # two other processes running)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(epochs):
            order = rng.permutation(len(y))
            total = 0.0
            for s in range(0, len(order), batch):
                idx = order[s:s + batch]
                Ws = [sh.matrix().astype(np.float64) for sh in shared]
                acts, pres = forward(x[idx], Ws)
                logp = _log_softmax(acts[-1])
                n = len(idx)
                loss = -logp[np.arange(n), y[idx]].mean()
                g = np.exp(logp)
                g[np.arange(n), y[idx]] -= 1
                g /= n
                if t_logits is not None:
                    T = float(temperature)
                    ls, lt = _log_softmax(acts[-1] / T), _log_softmax(t_logits[idx] / T)
                    kl = (np.exp(lt) * (lt - ls)).sum(axis=1).mean() * T * T
                    loss = alpha * loss + (1 - alpha) * kl
                    g = alpha * g + (1 - alpha) * T * (np.exp(ls) - np.exp(lt)) / n
                total += loss * n
                grads_c, grads_b, layer_grads = [], [], []
                for i in range(len(layers) - 1, -1, -1):
                    act = layers[i][2]
                    if i < len(layers) - 1:
                        g = g * _DERIVATIVES[act](pres[i], acts[i + 1])
                    gW = acts[i].T @ g
                    layer_grads.append(g)
                    grads_c.append(centroid_gradients(gW, shared[i].labels,
                                                      shared[i].codebook.size))
                    grads_b.append(g.sum(axis=0))
                    g = g @ Ws[i].T
                grads_c.reverse()
                grads_b.reverse()
                grads = grads_c + [gb for gb, b in zip(grads_b, biases, strict=True)
                                   if b is not None and train_bias]
                opt.step(params, grads)
                if reassign:
                    pairs = enumerate(zip(shared, layer_grads[::-1], strict=True))
                    opt_latent.step(latent, [np.where(sh.labels >= 0, acts[i].T @ gl, 0.0)
                                             for i, (sh, gl) in pairs])
            for sh, L in zip(shared, latent, strict=False):
                sh.nearest(L)
            result.loss.append(total / len(y))
            if validation is not None:
                Ws = [sh.matrix().astype(np.float64) for sh in shared]
                acts, _ = forward(np.asarray(validation[0], np.float64), Ws)
                result.accuracy.append(float((acts[-1].argmax(1) == validation[1]).mean()))
    out = dict(tensors)
    for (w, b, _), sh, bias in zip(layers, shared, biases, strict=True):
        out[w] = sh.matrix()
        if b is not None and bias is not None:
            out[b] = bias.astype(np.asarray(tensors[b]).dtype)
    result.tensors = out
    return result
