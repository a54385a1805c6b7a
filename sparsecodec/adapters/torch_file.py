"""PyTorch state dicts (``.pt`` / ``.pth``), loaded with ``torch.load(weights_only=True)``:
never unpickles arbitrary objects (optional: torch must be installed). ``nn.Linear`` weights
are (outputs, inputs) and conv kernels OIHW: pack with ``--layout torch``. bfloat16 tensors
are read as ``ml_dtypes.bfloat16`` arrays and written back as torch bfloat16, bit for bit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..dtypes import from_bits, is_bfloat16
from ..errors import FormatError
from ..io.files import atomic_output
from .source import ArraySource, TensorSource


def _lib() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FormatError("reading or writing .pt needs torch (pip install torch)") from exc
    return torch


def source(path: str | os.PathLike, max_bytes: Any = "auto") -> TensorSource:
    """The state dict read whole (torch has no lazy reader here); every weight in torch's
    layout: (out, in) and OIHW."""
    tensors = read(path)
    return ArraySource(tensors, dict.fromkeys(tensors, "torch"))


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    torch = _lib()
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
        raise FormatError(f"{path}: not a loadable state dict ({exc})") from exc
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"],
                                                                         Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise FormatError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    out = {}
    for name, t in obj.items():
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu()
            out[str(name)] = (from_bits(t.view(torch.int16).numpy().view(np.uint16))
                              if t.dtype == torch.bfloat16 else t.numpy())
    return out


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> None:
    torch = _lib()
    with atomic_output(path) as fh:
        torch.save({n: _tensor(torch, a) for n, a in tensors.items()}, fh)


def _tensor(torch: Any, a: np.ndarray) -> Any:
    a = np.ascontiguousarray(a)
    if is_bfloat16(a.dtype):
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def sequential_spec(module: Any) -> list[dict[str, Any]]:
    """The ``runtime`` layer list of a simple ``torch.nn.Sequential`` (Linear, Conv2d,
    MaxPool2d, AvgPool2d, Flatten, ReLU, GELU, Tanh, Sigmoid, Softmax), with weight names as
    in its ``state_dict()``. Raises :class:`FormatError` for any other layer."""
    torch = _lib()
    nn = torch.nn
    spec: list[dict[str, Any]] = []
    acts = {nn.ReLU: "relu", nn.GELU: "gelu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
            nn.Softmax: "softmax"}
    for name, layer in module.named_children():
        bias = f"{name}.bias" if getattr(layer, "bias", None) is not None else None
        if isinstance(layer, nn.Linear):
            spec.append({"type": "linear", "weight": f"{name}.weight", "bias": bias})
        elif isinstance(layer, nn.Conv2d):
            if layer.groups != 1 or layer.dilation != (1, 1) or isinstance(layer.padding, str):
                raise FormatError(f"{name}: only plain Conv2d (groups 1, dilation 1, numeric "
                                  "padding) runs compressed")
            spec.append({"type": "conv2d", "weight": f"{name}.weight", "bias": bias,
                         "kernel_size": list(layer.kernel_size), "stride": list(layer.stride),
                         "padding": list(layer.padding)})
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            spec.append({"type": "maxpool2d" if isinstance(layer, nn.MaxPool2d) else
                         "avgpool2d", "kernel_size": layer.kernel_size, "stride": layer.stride})
        elif isinstance(layer, nn.Flatten):
            spec.append({"type": "flatten"})
        elif type(layer) in acts:
            spec.append({"type": "activation", "name": acts[type(layer)]})
        else:
            raise FormatError(f"{name}: {type(layer).__name__} is not supported by the runtime")
    return spec
