"""PyTorch modules that hold encoded weights and compute with this library's kernels, and
the functions that put them into a model (``compress``), save and load them through our
container (``save_compressed`` / ``load_compressed``).

A compressed module keeps only the ``Encoded`` matrix (NumPy arrays, memory-mapped when
loaded from a file) and its bias. Its forward pass hands the input to the format's
``X @ enc`` kernel through a zero-copy NumPy view and wraps the result as a tensor, so its
output carries no gradient: compressed modules are for inference, and ``finetune`` trains
their shared values.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import FormatError, OptionError, PackError
from ..formats.base import Encoded
from ..pack import (
    _compress,
    _target,
    matrix_shape,
    pack_encoded,
    pack_records,
    parse_quantizer,
    restore,
    to_matrix,
)
from ..progress import progress
from ..runtime.layers import CompressedConv2d as _Conv2d

META_KEY = "sparsecodec.torch"  # the file's list of compressed modules and their settings


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor (a float32 copy for half precision types NumPy lacks)."""
    t = t.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.cpu().numpy()


class CompressedLinear(nn.Module):
    """``nn.Linear`` on an encoded (in_features, out_features) matrix."""

    def __init__(self, encoded: Encoded, bias: torch.Tensor | None = None):
        super().__init__()
        self.encoded = encoded
        self.in_features, self.out_features = encoded.shape
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                           requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        X = _numpy(x).reshape(-1, self.in_features)
        y = torch.from_numpy(X @ self.encoded).to(dtype)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(dtype)

    def extra_repr(self) -> str:
        e = self.encoded
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"format={e.format}, bytes={e.nbytes}, bias={self.bias is not None}")


class CompressedConv2d(nn.Module):
    """``nn.Conv2d`` (zero padding; groups, stride and dilation as given) on an encoded
    (in_channels / groups * kh * kw, out_channels) matrix, through the runtime's im2col
    convolution."""

    def __init__(self, encoded: Encoded, kernel_size: Any, bias: torch.Tensor | None = None,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1):
        super().__init__()
        self.encoded = encoded
        self._conv = _Conv2d(encoded, kernel_size, None, stride, padding, "linear", groups,
                             dilation)
        self.in_channels, self.out_channels = self._conv.in_channels, self._conv.out_channels
        self.kernel_size = (self._conv.kh, self._conv.kw)
        self.stride, self.padding = self._conv.stride, self._conv.padding
        self.dilation, self.groups = self._conv.dilation, self._conv.groups
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                           requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        y = torch.from_numpy(self._conv(_numpy(x))).to(dtype)
        return y if self.bias is None else y + self.bias.to(dtype)[:, None, None]

    def extra_repr(self) -> str:
        e = self.encoded
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
                f"format={e.format}, bytes={e.nbytes}")


COMPRESSED = (CompressedLinear, CompressedConv2d)


def _conv_args(m: nn.Conv2d, name: str) -> dict[str, Any]:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise OptionError(f"module {name!r}: only numeric zero padding is supported, found "
                          f"padding={m.padding!r}, padding_mode={m.padding_mode!r}")
    return {"kernel_size": list(m.kernel_size), "stride": list(m.stride),
            "padding": list(m.padding), "dilation": list(m.dilation), "groups": m.groups}


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def compressed_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The compressed modules of ``model`` by qualified name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, COMPRESSED)}


def make_module(enc: Encoded, d: Mapping[str, Any], bias: torch.Tensor | None) -> nn.Module:
    """The compressed module that ``describe`` describes, on ``enc``."""
    if d["kind"] == "linear":
        return CompressedLinear(enc, bias)
    return CompressedConv2d(enc, d["kernel_size"], bias, d["stride"], d["padding"],
                            d["dilation"], d["groups"])


def describe(m: CompressedLinear | CompressedConv2d) -> dict[str, Any]:
    """A compressed module's kind and convolution settings (as the file's module list
    holds them)."""
    if isinstance(m, CompressedLinear):
        return {"kind": "linear"}
    return {"kind": "conv2d", "kernel_size": list(m.kernel_size), "stride": list(m.stride),
            "padding": list(m.padding), "dilation": list(m.dilation), "groups": m.groups}


def torch_shape(m: CompressedLinear | CompressedConv2d) -> tuple[int, ...]:
    """The shape torch gives the module's weight: (out, in), or OIHW."""
    if isinstance(m, CompressedLinear):
        return (m.out_features, m.in_features)
    return (m.out_channels, m.in_channels // m.groups, *m.kernel_size)


def _settings_for(name: str, defaults: dict[str, Any],
                  settings: Mapping[str, Mapping[str, Any] | None] | None
                  ) -> dict[str, Any] | None:
    """The settings of module ``name``: the first pattern of ``settings`` (fnmatch, or the
    exact name) that matches overrides the defaults; a None value skips the module."""
    for pattern, own in (settings or {}).items():
        if pattern == name or fnmatch.fnmatchcase(name, pattern):
            return None if own is None else {**defaults, **own}
    return defaults


def gradient_importance(model: nn.Module, loss_fn: Callable[..., torch.Tensor],
                        data: Iterable[Any], modules: Iterable[str] | None = None
                        ) -> dict[str, np.ndarray]:
    """The summed squared gradient of the loss with respect to each weight of the
    ``nn.Linear`` and ``nn.Conv2d`` modules (or those named), over the batches ``(x, y)`` of
    ``data``: GWK's importance (``quantize.gwk``), as (inputs, outputs) matrices laid out as
    ``pack`` stores the weights."""
    want = set(modules) if modules is not None else None
    mods = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))
            and (want is None or n in want)}
    acc = {n: torch.zeros_like(m.weight, dtype=torch.float64) for n, m in mods.items()}
    was = {n: m.weight.requires_grad for n, m in mods.items()}
    for m in mods.values():
        m.weight.requires_grad_(True)
    try:
        for x, y in data:
            model.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            for n, m in mods.items():
                if m.weight.grad is not None:
                    acc[n] += m.weight.grad.double() ** 2
    finally:
        for n, m in mods.items():
            m.weight.requires_grad_(was[n])
            m.weight.grad = None
    return {n: to_matrix(a.numpy(), "torch")[0] for n, a in acc.items()}


def _parse(spec: str | None) -> tuple[str, dict[str, int]] | None:
    """``pack``'s quantizer spec, and ``"gwk:K"`` (which needs the gradients)."""
    if spec and spec.startswith("gwk:"):
        k = parse_quantizer(f"kmeans:{spec[4:]}")
        return ("gwk", k[1]) if k else None
    return parse_quantizer(spec)


def compress(model: nn.Module, prune: float | None = None, quantize: str | None = None,
             format: str = "auto", *, max_error: float | None = None,
             bits: float | None = None, objective: str = "size",
             settings: Mapping[str, Mapping[str, Any] | None] | None = None,
             data: Iterable[Any] | None = None, loss_fn: Callable[..., torch.Tensor] | None = None,
             show_progress: bool = False) -> nn.Module:
    """Replace every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` (in place; the model is
    returned) by a module that holds its weight encoded and computes on it.

    ``prune`` (percent), ``quantize`` (``"kmeans:32"``, ``"uniform:16"``, ``"gwk:32"``, ...
    as ``pack --quantize``), ``format``, ``max_error`` / ``bits`` (``sc.compress`` targets)
    and ``objective`` are the defaults; ``settings`` maps module names or fnmatch patterns
    to their own overrides (``{"classifier": None}`` keeps that module as it is; the first
    matching pattern wins). ``"gwk:K"`` weighs each weight by its squared gradient of
    ``loss_fn(model(x), y)`` summed over the ``(x, y)`` batches of ``data`` (gradient-weighted
    k-means with the framework's real gradients)."""
    defaults = {"prune": prune, "quantize": quantize, "format": format,
                "max_error": max_error, "bits": bits, "objective": objective}
    todo = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and name:
            own = _settings_for(name, defaults, settings)
            if own is not None:
                todo.append((name, m, own))
    unknown = [p for p in settings or {} if not any(
        p == n or fnmatch.fnmatchcase(n, p) for n, m in model.named_modules())]
    if unknown:
        raise OptionError(f"settings name no module of the model: {', '.join(unknown[:5])}")
    gwk = [n for n, _, s in todo if (s["quantize"] or "").startswith("gwk:")]
    importance: dict[str, np.ndarray] = {}
    if gwk:
        if data is None or loss_fn is None:
            raise OptionError("quantize 'gwk:K' needs data and loss_fn for the gradients")
        importance = gradient_importance(model, loss_fn, data, gwk)
    for i, (name, m, s) in enumerate(todo):
        if show_progress:
            progress(i, len(todo), f"compress {name[-40:]}")
        W, _ = to_matrix(_numpy(m.weight), "torch")
        quant = _parse(s["quantize"])
        try:
            enc, _, _ = _compress([W], s["prune"], quant, s["format"], s["objective"],
                                  _target(s["max_error"], s["bits"], s["quantize"]),
                                  importance.get(name))
        except Exception as exc:
            raise PackError(f"module {name!r}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(enc, Encoded):  # pragma: no cover - _compress returns Encoded
            raise PackError(f"module {name!r}: no encoded matrix")
        bias = None if m.bias is None else m.bias.detach()
        if isinstance(m, nn.Linear):
            _replace(model, name, CompressedLinear(enc, bias))
        else:
            _replace(model, name, make_module(enc, {"kind": "conv2d", **_conv_args(m, name)},
                                              bias))
    if show_progress:
        progress(len(todo), len(todo), "done")
    return model


def save_compressed(model: nn.Module, path: str | os.PathLike,
                    show_progress: bool = False) -> int:
    """Write ``model``'s state to our container ``path`` (no pickle): every compressed
    module's weight as its encoded matrix, every other tensor of the state dict as packed
    losslessly by ``pack`` (bfloat16 and float16 tensors are widened to float32). The file's
    ``sparsecodec.torch`` metadata lists the compressed modules; ``sparsecodec unpack`` gives
    back a state dict any torch model loads. Returns the file's size in bytes."""
    mods = compressed_modules(model)
    encoded = {f"{n}.weight": (m.encoded, torch_shape(m)) for n, m in mods.items()}
    tensors = {k: _numpy(v) for k, v in model.state_dict().items() if k not in encoded}
    info = {"version": 1, "modules": {n: describe(m) for n, m in mods.items()}}
    pack_encoded(path, tensors, encoded, layout="torch",
                 metadata={META_KEY: json.dumps(info)}, show_progress=show_progress)
    return os.stat(path).st_size


def _module_list(f: Any, where: str) -> dict[str, dict[str, Any]]:
    from ..io.tensors import parse_json

    text = f.metadata.get(META_KEY)
    if not text:
        raise FormatError(f"{where}: no {META_KEY!r} metadata: not written by save_compressed")
    info = parse_json(text, f"{where}: metadata {META_KEY}")
    mods = info.get("modules") if isinstance(info, dict) else None
    if not isinstance(mods, dict):
        raise FormatError(f"{where}: metadata {META_KEY}: 'modules' must be an object")
    for name, d in mods.items():
        ok = isinstance(d, dict) and d.get("kind") in ("linear", "conv2d")
        if ok and d["kind"] == "conv2d":
            ok = all(isinstance(d.get(k), list) and len(d[k]) == 2 and
                     all(isinstance(v, int) and v >= 0 for v in d[k])
                     for k in ("kernel_size", "stride", "padding", "dilation")) and \
                isinstance(d.get("groups"), int) and d["groups"] >= 1
        if not ok:
            raise FormatError(f"{where}: metadata {META_KEY}: module {name[:80]!r} is not a "
                              "linear or conv2d description")
    return mods


def load_compressed(model: nn.Module, path: str | os.PathLike, strict: bool = True
                    ) -> nn.Module:
    """Load a file written by :func:`save_compressed` into ``model`` (a skeleton of the same
    architecture, e.g. built from its config): the modules that were compressed are replaced
    by compressed modules on the file's encoded weights (memory-mapped, never decoded), every
    other tensor is loaded into the model's state dict. ``strict`` as ``load_state_dict``.
    Returns the model."""
    from ..io import open_file

    f = open_file(path)
    where = str(path)
    mods = _module_list(f, where)
    records = pack_records(f.metadata, where)
    named = dict(model.named_modules())
    state: dict[str, torch.Tensor] = {}
    for name in f:
        module = name.rpartition(".")[0]
        if name.endswith(".weight") and module in mods:
            continue
        x = f[name]
        if isinstance(x, Encoded) and name not in records:
            raise FormatError(f"{where}: tensor {name!r} has no pack record")
        a = restore(x, records.get(name), name, where)
        state[name] = torch.from_numpy(np.ascontiguousarray(a))
    for name, d in mods.items():
        if name not in named:
            raise FormatError(f"{where}: module {name!r} is not in the model")
        enc = f[f"{name}.weight"]
        if not isinstance(enc, Encoded):
            raise FormatError(f"{where}: {name}.weight is not an encoded matrix")
        r = records.get(f"{name}.weight")
        old = named[name]
        want = matrix_shape(tuple(r["shape"]), "torch")[0] if r else None
        if want is not None and want != enc.shape:
            raise FormatError(f"{where}: {name}.weight: record shape {r['shape']} does not fit "
                              f"the {enc.shape} matrix")
        bias = state.get(f"{name}.bias")
        try:
            new = make_module(enc, d, bias)
        except Exception as exc:
            raise FormatError(f"{where}: module {name!r}: {exc}") from None
        expect = (nn.Linear, CompressedLinear) if d["kind"] == "linear" else \
            (nn.Conv2d, CompressedConv2d)
        if not isinstance(old, expect):
            raise FormatError(f"{where}: module {name!r} is a {type(old).__name__} in the "
                              f"model, a {d['kind']} in the file")
        _replace(model, name, new)
    # weights of replaced modules are gone from the model's state dict now
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise FormatError(f"{where}: the file does not fit the model: missing "
                          f"{list(missing)[:5]}, unexpected {list(unexpected)[:5]}")
    return model


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes held by the model's weights: ``encoded``, the memory of every NumPy array the
    compressed modules reach (their components and anything a kernel cached on them; arrays
    that share memory, such as a component and the view a kernel keeps of it, count once);
    ``dense``, the parameters and buffers of the model (the compressed modules' biases, and
    every module left as it was)."""
    try:
        from numpy.lib.array_utils import byte_bounds
    except ImportError:  # NumPy before 2.0
        from numpy import byte_bounds  # type: ignore[attr-defined,no-redef]
    seen: set[int] = set()
    spans: list[tuple[int, int]] = []

    def collect(obj: Any, depth: int = 0) -> None:
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if obj.nbytes:
                spans.append(byte_bounds(obj))
        elif isinstance(obj, dict):
            for v in obj.values():
                collect(v, depth + 1)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                collect(v, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, (nn.Module, type)):
            for v in vars(obj).values():
                collect(v, depth + 1)

    for m in compressed_modules(model).values():
        collect(m.encoded)
    encoded, end = 0, -1
    for lo, hi in sorted(spans):  # the union of the byte ranges
        if hi > end:
            encoded += hi - max(lo, end)
            end = hi
    dense = sum(p.numel() * p.element_size() for p in model.parameters()) + \
        sum(b.numel() * b.element_size() for b in model.buffers())
    return {"encoded": encoded, "dense": dense}
