"""Layers that compute on encoded weights: the matrix is never decoded, every product goes
through the format's own ``X @ enc`` kernel.

Tensors follow PyTorch's conventions: dense inputs are (batch, features), images are
(batch, channels, height, width). Weights are our (inputs, outputs) matrices; a convolution
kernel is stored as ``quantize.conv_to_matrix`` lays it out (rows (in_channel, ky, kx)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import erf

from ..errors import OptionError, ShapeError
from ..formats.base import Encoded

ACTIVATIONS = ("linear", "relu", "softmax", "gelu", "gelu_tanh", "tanh", "sigmoid", "silu",
               "relu6", "hardswish", "hardsigmoid")


def activate(x: np.ndarray, name: str) -> np.ndarray:
    """Apply an activation by name (softmax over the last axis; exact, erf-based GELU)."""
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "gelu":
        return 0.5 * x * (1 + erf(x / math.sqrt(2)))
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "silu":
        return x / (1 + np.exp(-x))
    if name == "gelu_tanh":  # PyTorch's GELU(approximate="tanh"), BERT's "gelu_new"
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu6":
        return np.clip(x, 0, 6)
    if name == "hardsigmoid":
        return np.clip(x + 3, 0, 6) / 6
    if name == "hardswish":
        return x * np.clip(x + 3, 0, 6) / 6
    raise OptionError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


def _pair(v: Any, name: str) -> tuple[int, int]:
    a, b = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if min(a, b) < 0 or (name != "padding" and min(a, b) < 1):
        raise OptionError(f"{name} must be positive integers, got {v!r}")
    return int(a), int(b)


class CompressedLinear:
    """``activation(x @ W + bias)`` with W encoded (any format): (batch, n) -> (batch, m)."""

    def __init__(self, weight: Encoded, bias: Any = None, activation: str = "linear"):
        self.weight = weight
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        if self.bias is not None and self.bias.shape != (weight.shape[1],):
            raise ShapeError(f"bias must have shape ({weight.shape[1]},), got {self.bias.shape}")
        activate(np.zeros(1), activation)  # validates the name
        self.activation = activation

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim == 1:
            y = self.weight.rmatvec(x)
        else:  # (..., n): every leading axis is a batch axis (tokens of a sequence)
            y = (x.reshape(-1, x.shape[-1]) @ self.weight).reshape(*x.shape[:-1], -1)
        if self.bias is not None:
            y = y + self.bias
        return activate(y, self.activation)


def _windows(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int],
             padding: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The (N, C, Ho, Wo, kh, kw) view of every kernel window of a padded (N, C, H, W)."""
    N, C, H, W = x.shape
    ph, pw = padding
    sh, sw = stride
    dh, dw = dilation
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # the dilated kernel's extent
    Ho = (H + 2 * ph - eh) // sh + 1
    Wo = (W + 2 * pw - ew) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ShapeError(f"a {kh}x{kw} kernel (dilation {dilation}) does not fit a {H}x{W} "
                         f"input with padding {padding}")
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    view = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(2, 3))
    return view[:, :, ::sh, ::sw][:, :, :Ho, :Wo, ::dh, ::dw]


def patches(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int],
            padding: tuple[int, int], dilation: tuple[int, int] = (1, 1)
            ) -> tuple[np.ndarray, int, int]:
    """im2col: (N, C, H, W) -> (N * Ho * Wo, C * kh * kw), rows ordered (c, ky, kx) like
    ``conv_to_matrix``; also returns Ho, Wo."""
    view = _windows(x, kh, kw, stride, padding, dilation)
    N, C, Ho, Wo = view.shape[:4]
    cols = view.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    return np.ascontiguousarray(cols, np.float64), Ho, Wo


class CompressedConv2d:
    """2-D convolution (cross-correlation, as in PyTorch) whose kernel is an encoded
    (C / groups * kh * kw, O) matrix: patches are extracted (im2col) and multiplied with
    ``X @ enc``. (N, C, H, W) -> (N, O, Ho, Wo).

    Grouped convolutions (``groups`` > 1, depthwise when groups = C = O) multiply each group's
    patches by that group's O / groups columns, decoded one group at a time into a scratch
    array (``decode_columns``: blocked formats decode only those blocks): a product with the
    whole matrix would compute ``groups`` times the outputs needed. A depthwise kernel
    (kh * kw rows) is decoded whole, kh * kw * C values."""

    def __init__(self, weight: Encoded, kernel_size: Any, bias: Any = None, stride: Any = 1,
                 padding: Any = 0, activation: str = "linear", groups: int = 1,
                 dilation: Any = 1):
        self.weight = weight
        self.kh, self.kw = _pair(kernel_size, "kernel_size")
        rows, self.out_channels = weight.shape
        if rows % (self.kh * self.kw):
            raise ShapeError(f"a ({rows}, {self.out_channels}) matrix is not a "
                             f"{self.kh}x{self.kw} kernel")
        if not isinstance(groups, (int, np.integer)) or groups < 1 \
                or self.out_channels % groups:
            raise OptionError(f"groups must be a positive integer dividing the {self.out_channels}"
                              f" output channels, got {groups!r}")
        self.groups = int(groups)
        self.in_channels = rows // (self.kh * self.kw) * self.groups
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        if self.bias is not None and self.bias.shape != (self.out_channels,):
            raise ShapeError(f"bias must have shape ({self.out_channels},)")
        activate(np.zeros(1), activation)
        self.activation = activation

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"expected (N, {self.in_channels}, H, W), got {x.shape}")
        if self.groups == 1:
            cols, Ho, Wo = patches(x, self.kh, self.kw, self.stride, self.padding,
                                   self.dilation)
            y = cols @ self.weight  # (N * Ho * Wo, O)
            y = y.reshape(x.shape[0], Ho, Wo, self.out_channels).transpose(0, 3, 1, 2)
        else:
            y = self._grouped(x)
        if self.bias is not None:
            y = y + self.bias[:, None, None]
        return activate(np.ascontiguousarray(y), self.activation)

    def _grouped(self, x: np.ndarray) -> np.ndarray:
        g, outs = self.groups, self.out_channels
        cg, og = self.in_channels // g, outs // g
        view = _windows(x, self.kh, self.kw, self.stride, self.padding, self.dilation)
        N, _, Ho, Wo = view.shape[:4]
        if cg == 1 and og == 1:  # depthwise: (kh * kw, C) kernel, one column per channel
            W = self._columns(0, outs).reshape(self.kh, self.kw, outs)
            return np.einsum("nchwij,ijc->nchw", view, W, optimize=True)
        y = np.empty((N, outs, Ho, Wo))
        for i in range(g):
            part = view[:, i * cg:(i + 1) * cg]
            cols = part.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, -1)
            W = self._columns(i * og, (i + 1) * og)
            y[:, i * og:(i + 1) * og] = (cols @ W).reshape(N, Ho, Wo, og).transpose(0, 3, 1, 2)
        return y

    def _columns(self, start: int, stop: int) -> np.ndarray:
        w = self.weight
        cols = w[:, start:stop] if isinstance(w, np.ndarray) else w.decode_columns(start, stop)
        return np.asarray(cols, np.float64)


class Pool2d:
    """Max or average pooling over kernel_size windows: (N, C, H, W) -> (N, C, Ho, Wo)."""

    def __init__(self, kind: str, kernel_size: Any, stride: Any = None):
        if kind not in ("max", "avg"):
            raise OptionError(f"pooling kind must be 'max' or 'avg', got {kind!r}")
        self.kind = kind
        self.k = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride if stride is not None else kernel_size, "stride")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        view = np.lib.stride_tricks.sliding_window_view(x, self.k, axis=(2, 3))
        view = view[:, :, ::self.stride[0], ::self.stride[1]]
        return view.max(axis=(4, 5)) if self.kind == "max" else view.mean(axis=(4, 5))


class Flatten:
    """(N, ...) -> (N, prod(...)), in C order (as torch.flatten(x, 1)); with ``channels_last``
    an (N, C, H, W) input is flattened in (H, W, C) order, as Keras does after its convs."""

    def __init__(self, channels_last: bool = False):
        self.channels_last = channels_last

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.channels_last and x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)


class Transpose:
    """Permute the axes (e.g. [0, 3, 1, 2]: NHWC images in, NCHW for the conv layers)."""

    def __init__(self, axes: list[int]):
        self.axes = tuple(int(a) for a in axes)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(self.axes))


class Activation:
    def __init__(self, name: str):
        activate(np.zeros(1), name)
        self.name = name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return activate(x, self.name)


class Add:
    """The sum of its inputs (a residual connection), then an activation."""

    def __init__(self, activation: str = "linear"):
        activate(np.zeros(1), activation)
        self.activation = activation

    def __call__(self, *xs: np.ndarray) -> np.ndarray:
        if len(xs) < 2:
            raise ShapeError(f"add needs at least 2 inputs, got {len(xs)}")
        y = np.asarray(xs[0], np.float64)
        for x in xs[1:]:
            y = y + x
        return activate(y, self.activation)


def _vector(v: Any, n: int | None, what: str) -> np.ndarray:
    a = np.asarray(v, np.float64)
    if a.ndim != 1 or (n is not None and a.shape[0] != n):
        raise ShapeError(f"{what} must be a vector{'' if n is None else f' of length {n}'}, "
                         f"got shape {a.shape}")
    return a


class LayerNorm:
    """Normalization over the last axis, then ``* weight + bias`` (PyTorch's LayerNorm: the
    biased variance)."""

    def __init__(self, weight: Any, bias: Any = None, eps: float = 1e-5):
        self.weight = _vector(weight, None, "layernorm weight")
        n = self.weight.shape[0]
        self.bias = None if bias is None else _vector(bias, n, "layernorm bias")
        self.eps = float(eps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        y = (x - mu) / np.sqrt(var + self.eps) * self.weight
        return y if self.bias is None else y + self.bias


class BatchNorm:
    """Inference-time batch normalization over axis 1 ((N, C) or (N, C, H, W)): running
    mean and variance, then ``* weight + bias``. ``fold_batchnorm`` folds it into the layer
    before it when packing."""

    def __init__(self, mean: Any, var: Any, weight: Any = None, bias: Any = None,
                 eps: float = 1e-5):
        self.mean = _vector(mean, None, "batchnorm mean")
        n = self.mean.shape[0]
        self.var = _vector(var, n, "batchnorm var")
        self.weight = None if weight is None else _vector(weight, n, "batchnorm weight")
        self.bias = None if bias is None else _vector(bias, n, "batchnorm bias")
        self.eps = float(eps)

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) with ``bn(x) = x * scale + shift`` per channel."""
        scale = 1 / np.sqrt(self.var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -self.mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        return scale, shift

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim < 2 or x.shape[1] != self.mean.shape[0]:
            raise ShapeError(f"batchnorm over {self.mean.shape[0]} channels got shape {x.shape}")
        scale, shift = self.scale_shift()
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * scale.reshape(shape) + shift.reshape(shape)


class Embedding:
    """Rows of a table looked up by integer ids: (batch, seq) ids -> (batch, seq, dim).

    ``tokens="columns"``: the stored matrix is (dim, vocab), token t its column t (what
    ``pack --layout torch`` makes of an ``nn.Embedding`` weight); "rows": (vocab, dim). An
    encoded table is never decoded whole: for columns, each run of consecutive ids that the
    batch uses is decoded alone (``decode_columns``); for rows, the rows come out of a
    product with one-hot vectors (exact: one nonzero term per sum). ``positions``: the ids
    are ignored except for their shape, and position p of each sequence looks up row p
    (learned position embeddings); ``fixed``: every position looks up that one row (a
    token type of 0 when the model gets no token types)."""

    def __init__(self, weight: Any, tokens: str = "columns", positions: bool = False,
                 fixed: int | None = None):
        if tokens not in ("columns", "rows"):
            raise OptionError(f"embedding tokens must be 'columns' or 'rows', got {tokens!r}")
        if fixed is not None and (positions or not isinstance(fixed, (int, np.integer))):
            raise OptionError(f"embedding fixed must be one integer row, without positions; "
                              f"got {fixed!r}")
        self.weight = weight
        self.tokens = tokens
        self.positions = bool(positions)
        self.fixed = None if fixed is None else int(fixed)
        self.vocab = weight.shape[1] if tokens == "columns" else weight.shape[0]

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if self.positions:
            ids = np.broadcast_to(np.arange(ids.shape[-1]), ids.shape)
        elif self.fixed is not None:
            ids = np.full(ids.shape, self.fixed)
        elif ids.dtype.kind not in "iu":
            raise ShapeError(f"embedding ids must be integers, got {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab):
            raise ShapeError(f"embedding ids must lie in [0, {self.vocab}), got "
                             f"{ids.min()}..{ids.max()}")
        used, inverse = np.unique(ids, return_inverse=True)
        table = self.rows(used)  # (len(used), dim)
        return table[inverse.reshape(ids.shape)]

    def rows(self, used: np.ndarray) -> np.ndarray:
        """The table's rows ``used`` (sorted, distinct) as float64."""
        w = self.weight
        if isinstance(w, np.ndarray):
            return np.asarray(w[:, used].T if self.tokens == "columns" else w[used], np.float64)
        if self.tokens == "rows":
            onehot = np.zeros((len(used), w.shape[0]))
            onehot[np.arange(len(used)), used] = 1.0
            return np.asarray(onehot @ w, np.float64)
        out = np.empty((len(used), w.shape[0]))
        # runs of consecutive ids: one decode_columns call each
        breaks = np.flatnonzero(np.diff(used) != 1) + 1
        for run in np.split(np.arange(len(used)), breaks):
            if run.size:
                lo, hi = int(used[run[0]]), int(used[run[-1]]) + 1
                out[run] = np.asarray(w.decode_columns(lo, hi), np.float64).T
        return out


class Attention:
    """Multi-head scaled dot-product attention over (batch, seq, dim) queries, keys and
    values (the projections are ``linear`` layers before it; the output projection one after
    it): each of ``heads`` heads attends with softmax(q k^T / sqrt(dim / heads)). ``mask``
    (batch, seq), 1 for tokens to attend to and 0 for padding, as Hugging Face's
    ``attention_mask``; ``causal`` masks later positions."""

    def __init__(self, heads: int, causal: bool = False):
        if not isinstance(heads, (int, np.integer)) or heads < 1:
            raise OptionError(f"heads must be a positive integer, got {heads!r}")
        self.heads = int(heads)
        self.causal = bool(causal)

    def _split(self, t: np.ndarray) -> np.ndarray:
        B, S, D = t.shape
        if D % self.heads:
            raise ShapeError(f"width {D} is not a multiple of {self.heads} heads")
        return t.reshape(B, S, self.heads, D // self.heads).transpose(0, 2, 1, 3)

    def __call__(self, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                 mask: np.ndarray | None = None) -> np.ndarray:
        q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
        if q.ndim != 3 or k.shape != v.shape or q.shape[0] != k.shape[0] \
                or q.shape[2] != k.shape[2]:
            raise ShapeError(f"attention takes (batch, seq, dim) q, k, v; got {q.shape}, "
                             f"{k.shape}, {v.shape}")
        B, S, D = q.shape
        Q, K, V = self._split(q), self._split(k), self._split(v)
        scores = Q @ K.transpose(0, 1, 3, 2) / math.sqrt(D // self.heads)
        low = np.finfo(np.float64).min / 4  # added, not -inf: a fully masked row stays finite
        if mask is not None:
            m = np.asarray(mask)
            if m.shape != (B, k.shape[1]):
                raise ShapeError(f"attention mask must be (batch, seq) = {(B, k.shape[1])}, "
                                 f"got {m.shape}")
            scores = scores + np.where(m != 0, 0.0, low)[:, None, None, :]
        if self.causal:
            scores = scores + np.triu(np.full((S, k.shape[1]), low), 1)
        ctx = activate(scores, "softmax") @ V  # (B, H, S, dh)
        return ctx.transpose(0, 2, 1, 3).reshape(B, S, D)


class GlobalAvgPool:
    """(N, C, H, W) -> (N, C): the mean over each channel's plane
    (``nn.AdaptiveAvgPool2d(1)`` then flatten)."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4:
            raise ShapeError(f"global average pooling takes (N, C, H, W), got {x.shape}")
        return np.asarray(x, np.float64).mean(axis=(2, 3))


class Take:
    """One index along an axis (``x[:, 0]`` for ``axis=1, index=0``: a transformer's first
    token, as BERT's pooler takes it)."""

    def __init__(self, axis: int, index: int):
        self.axis, self.index = int(axis), int(index)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.take(x, self.index, axis=self.axis)
