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

ACTIVATIONS = ("linear", "relu", "softmax", "gelu", "tanh", "sigmoid")


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
        y = x @ self.weight if x.ndim == 2 else self.weight.rmatvec(x)
        if self.bias is not None:
            y = y + self.bias
        return activate(y, self.activation)


def patches(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int],
            padding: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """im2col: (N, C, H, W) -> (N * Ho * Wo, C * kh * kw), rows ordered (c, ky, kx) like
    ``conv_to_matrix``; also returns Ho, Wo."""
    N, C, H, W = x.shape
    ph, pw = padding
    sh, sw = stride
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Ho = (H + 2 * ph - kh) // sh + 1
    Wo = (W + 2 * pw - kw) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ShapeError(f"a {kh}x{kw} kernel does not fit a {H}x{W} input with padding "
                         f"{padding}")
    view = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    view = view[:, :, ::sh, ::sw][:, :, :Ho, :Wo]  # (N, C, Ho, Wo, kh, kw)
    cols = view.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * kh * kw)
    return np.ascontiguousarray(cols, np.float64), Ho, Wo


class CompressedConv2d:
    """2-D convolution (cross-correlation, as in PyTorch) whose kernel is an encoded
    (C * kh * kw, O) matrix: patches are extracted (im2col) and multiplied with ``X @ enc``.
    (N, C, H, W) -> (N, O, Ho, Wo)."""

    def __init__(self, weight: Encoded, kernel_size: Any, bias: Any = None, stride: Any = 1,
                 padding: Any = 0, activation: str = "linear"):
        self.weight = weight
        self.kh, self.kw = _pair(kernel_size, "kernel_size")
        rows, self.out_channels = weight.shape
        if rows % (self.kh * self.kw):
            raise ShapeError(f"a ({rows}, {self.out_channels}) matrix is not a "
                             f"{self.kh}x{self.kw} kernel")
        self.in_channels = rows // (self.kh * self.kw)
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        if self.bias is not None and self.bias.shape != (self.out_channels,):
            raise ShapeError(f"bias must have shape ({self.out_channels},)")
        activate(np.zeros(1), activation)
        self.activation = activation

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"expected (N, {self.in_channels}, H, W), got {x.shape}")
        cols, Ho, Wo = patches(x, self.kh, self.kw, self.stride, self.padding)
        y = cols @ self.weight  # (N * Ho * Wo, O)
        if self.bias is not None:
            y = y + self.bias
        y = y.reshape(x.shape[0], Ho, Wo, self.out_channels).transpose(0, 3, 1, 2)
        return activate(np.ascontiguousarray(y), self.activation)


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
