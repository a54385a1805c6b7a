"""Centroid fine-tuning of a compressed torch model: the retraining step of Deep Compression,
sHAM and GWK. The pruning mask and each weight's codebook assignment stay fixed; the shared
values (and the biases) are trained, each value by the summed gradient of the weights that
share it (autograd through ``codebook[labels]`` gives exactly
``quantize.centroid_gradients``). A teacher (the float model) adds a distillation loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OptionError
from ..formats.base import Matrix
from ..pack import _encode, from_matrix, to_matrix
from ..tune.finetune import Shared, nearest_labels
from .modules import (
    CompressedConv2d,
    CompressedLinear,
    _replace,
    compressed_modules,
    describe,
    make_module,
    torch_shape,
)


class SharedWeight(nn.Module):
    """A compressed module's weight as a trainable codebook (``codebook``, one parameter per
    distinct nonzero value) and fixed ``labels`` (-1 where the weight is zero): the weight is
    ``codebook[labels]``, zero where pruned. ``encoded()`` gives the compressed module back."""

    def __init__(self, module: CompressedLinear | CompressedConv2d, train_bias: bool = True):
        super().__init__()
        self.source = module
        W = module.encoded.decode()  # (inputs, outputs); only while fine-tuning
        shape = torch_shape(module)
        shared = Shared.of(from_matrix(W, "T" if len(shape) == 2 else "oihw", shape))
        self.codebook = nn.Parameter(torch.from_numpy(shared.codebook.astype(np.float32)))
        self.register_buffer("labels", torch.from_numpy(shared.labels))
        self.dtype = W.dtype
        b = module.bias
        self.bias = None if b is None else nn.Parameter(b.detach().float().clone(),
                                                        requires_grad=train_bias)

    def weight(self) -> torch.Tensor:
        idx = self.labels.clamp(min=0)
        w = self.codebook[idx]
        return torch.where(self.labels >= 0, w, torch.zeros((), dtype=w.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.source
        if isinstance(m, CompressedLinear):
            return F.linear(x, self.weight(), self.bias)
        return F.conv2d(x, self.weight(), self.bias, m.stride, m.padding, m.dilation, m.groups)

    def reassign(self, float_weight: torch.Tensor) -> None:
        """Give every unpruned weight the label of the trained value nearest to its float
        ``float_weight`` (the mask stays)."""
        labels = nearest_labels(self.codebook.detach().numpy(), self.labels.numpy(),
                                float_weight.detach().float().numpy())
        self.labels.copy_(torch.from_numpy(labels))

    def encoded(self) -> nn.Module:
        """The compressed module on the trained values, in the source's format (the
        smallest one if that format cannot hold them)."""
        T = self.weight().detach().numpy().astype(self.dtype)
        W, _ = to_matrix(T, "torch")
        try:
            enc = _encode(Matrix(W), self.source.encoded.format)
        except Exception:  # e.g. a grid format whose values left the grid
            enc = _encode(Matrix(W), "auto")
        bias = None if self.bias is None else self.bias.detach()
        return make_module(enc, describe(self.source), bias)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor,
                      temperature: float = 2.0) -> torch.Tensor:
    """Hinton's distillation term: T^2 * KL(softmax(teacher / T) || softmax(student / T))."""
    t = float(temperature)
    return F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                    reduction="batchmean", log_target=True) * t * t


def finetune(model: nn.Module, loss_fn: Callable[..., torch.Tensor], data: Iterable[Any],
             epochs: int = 1, steps: int | None = None, lr: float = 1e-3,
             teacher: nn.Module | None = None, alpha: float = 0.5,
             temperature: float = 2.0, reassign: bool = False, train_bias: bool = True,
             show_progress: bool = False) -> list[float]:
    """Train the shared values of ``model``'s compressed modules on ``data`` (batches
    ``(x, y)``, iterated ``epochs`` times, at most ``steps`` steps) with Adam at ``lr``,
    minimising ``loss_fn(model(x), y)``, or with a ``teacher``
    ``alpha * loss_fn + (1 - alpha) * distillation_loss(model(x), teacher(x), temperature)``.
    Masks and assignments stay fixed; ``reassign`` (with a teacher holding the float weights
    under the same module names) re-assigns every weight to its nearest trained value after
    each epoch. Nothing else of the model is trained. The compressed modules are rebuilt on
    the trained values at the end (same format). Returns the mean loss of each epoch."""
    if not 0 <= alpha <= 1:
        raise OptionError(f"alpha must lie in [0, 1], got {alpha!r}")
    if epochs < 1 or (steps is not None and steps < 1):
        raise OptionError("epochs and steps must be positive")
    if reassign and teacher is None:
        raise OptionError("reassign needs a teacher holding the float weights")
    mods = compressed_modules(model)
    if not mods:
        raise OptionError("the model has no compressed module: run sparsecodec.torch.compress "
                          "first")
    shared = {n: SharedWeight(m, train_bias) for n, m in mods.items()}
    floats = {}
    if reassign and teacher is not None:
        named = dict(teacher.named_modules())
        missing = [n for n in shared if not isinstance(named.get(n), (nn.Linear, nn.Conv2d))]
        if missing:
            raise OptionError(f"reassign: the teacher has no float module {missing[0]!r}")
        floats = {n: named[n].weight for n in shared}
    for n, s in shared.items():
        _replace(model, n, s)
    frozen = [p for p in model.parameters() if p.requires_grad and not any(
        p is q for s in shared.values() for q in s.parameters())]
    for p in frozen:
        p.requires_grad_(False)
    params = [p for s in shared.values() for p in s.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    history: list[float] = []
    done = 0
    try:
        for epoch in range(epochs):
            total, count = 0.0, 0
            for x, y in data:
                out = model(x)
                loss = loss_fn(out, y)
                if teacher is not None:
                    with torch.no_grad():
                        t = teacher(x)
                    loss = alpha * loss + (1 - alpha) * distillation_loss(out, t, temperature)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach())
                count += 1
                done += 1
                if steps is not None and done >= steps:
                    break
            history.append(total / max(count, 1))
            if show_progress:
                from ..progress import progress

                progress(epoch + 1, epochs, f"fine-tune loss {history[-1]:.4f}")
            for n, s in shared.items():
                if n in floats:
                    s.reassign(floats[n])
            if steps is not None and done >= steps:
                break
    finally:
        for p in frozen:
            p.requires_grad_(True)
        for n, s in shared.items():
            _replace(model, n, s.encoded())
    return history
