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

from .. import quantize as qz
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

    def __init__(self, module: CompressedLinear | CompressedConv2d, train_bias: bool = True,
                 latent: bool = False):
        super().__init__()
        self.source = module
        W = module.encoded.decode()  # (inputs, outputs); only while fine-tuning
        shape = torch_shape(module)
        shared = Shared.of(from_matrix(W, "T" if len(shape) == 2 else "oihw", shape))
        self.codebook = nn.Parameter(torch.from_numpy(shared.codebook.astype(np.float32)))
        self.register_parameter("latent", None)
        self.register_buffer("labels", torch.from_numpy(shared.labels))
        self.dtype = W.dtype
        if latent:  # a float copy of every weight, trained straight through the quantization
            self.latent = nn.Parameter(self.weight().detach().clone())
        b = module.bias
        self.bias = None if b is None else nn.Parameter(b.detach().float().clone(),
                                                        requires_grad=train_bias)

    def weight(self) -> torch.Tensor:
        idx = self.labels.clamp(min=0)
        w = self.codebook[idx]
        if self.latent is not None:  # the value stays codebook[labels]; the gradient
            w = w + (self.latent - self.latent.detach())  # reaches both
        return torch.where(self.labels >= 0, w, torch.zeros((), dtype=w.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.source
        if isinstance(m, CompressedLinear):
            return F.linear(x, self.weight(), self.bias)
        return F.conv2d(x, self.weight(), self.bias, m.stride, m.padding, m.dilation, m.groups)

    def reassign(self, float_weight: torch.Tensor) -> None:
        """Give every unpruned weight the label of the trained value nearest to its entry of
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


def _check(alpha: float, epochs: int, steps: int | None) -> None:
    if not 0 <= alpha <= 1:
        raise OptionError(f"alpha must lie in [0, 1], got {alpha!r}")
    if epochs < 1 or (steps is not None and steps < 1):
        raise OptionError("epochs and steps must be positive")


def _train(model: nn.Module, groups: list[dict[str, Any]], loss_fn: Callable[..., torch.Tensor],
           data: Iterable[Any], epochs: int, steps: int | None, teacher: nn.Module | None,
           alpha: float, temperature: float, after_step: Callable[[], None],
           after_epoch: Callable[[], None], label: str, show_progress: bool) -> list[float]:
    """Adam on the parameter ``groups`` (only these: every other parameter of the model is
    frozen meanwhile), minimising ``loss_fn`` or its mix with the teacher's distillation
    term; the mean loss of each epoch."""
    mine = {id(q) for g in groups for q in g["params"]}
    frozen = [q for q in model.parameters() if q.requires_grad and id(q) not in mine]
    for q in frozen:
        q.requires_grad_(False)
    opt = torch.optim.Adam(groups)
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
                after_step()
                total += float(loss.detach())
                count += 1
                done += 1
                if steps is not None and done >= steps:
                    break
            history.append(total / max(count, 1))
            if show_progress:
                from ..progress import progress

                progress(epoch + 1, epochs, f"{label} loss {history[-1]:.4f}")
            after_epoch()
            if steps is not None and done >= steps:
                break
    finally:
        for q in frozen:
            q.requires_grad_(True)
    return history


def prune_retrain(model: nn.Module, prune: float, loss_fn: Callable[..., torch.Tensor],
                  data: Iterable[Any], epochs: int = 1, steps: int | None = None,
                  lr: float = 1e-3, teacher: nn.Module | None = None, alpha: float = 0.5,
                  temperature: float = 2.0, show_progress: bool = False) -> list[float]:
    """Deep Compression's first stage, before ``compress`` shares the values: prune
    ``prune`` percent of every ``nn.Linear`` and ``nn.Conv2d`` weight by magnitude (as
    ``pack --prune``: ``quantize.prune`` per tensor) and retrain the surviving float weights
    (and the whole model's other parameters) with the mask held, as :func:`finetune` trains.
    In place; returns the mean loss of each epoch. Then
    ``compress(model, quantize="kmeans:K")`` keeps the zeros and ``finetune`` trains the
    shared values."""
    _check(alpha, epochs, steps)
    mods = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not mods:
        raise OptionError("the model has no nn.Linear or nn.Conv2d to prune")
    masks = []
    with torch.no_grad():
        for m in mods:
            kept = qz.prune(m.weight.detach().float().numpy(), prune).mask
            masks.append(torch.from_numpy(kept).to(m.weight.dtype))
            m.weight.mul_(masks[-1])

    def hold() -> None:
        with torch.no_grad():
            for m, mask in zip(mods, masks, strict=True):
                m.weight.mul_(mask)

    params = [q for q in model.parameters() if q.requires_grad]
    return _train(model, [{"params": params, "lr": lr}], loss_fn, data, epochs, steps, teacher,
                  alpha, temperature, hold, lambda: None, "retrain", show_progress)


def finetune(model: nn.Module, loss_fn: Callable[..., torch.Tensor], data: Iterable[Any],
             epochs: int = 1, steps: int | None = None, lr: float = 1e-3,
             teacher: nn.Module | None = None, alpha: float = 0.5,
             temperature: float = 2.0, reassign: bool = False, train_bias: bool = True,
             show_progress: bool = False) -> list[float]:
    """Train the shared values of ``model``'s compressed modules on ``data`` (batches
    ``(x, y)``, iterated ``epochs`` times, at most ``steps`` steps) with Adam at ``lr``,
    minimising ``loss_fn(model(x), y)``, or with a ``teacher``
    ``alpha * loss_fn + (1 - alpha) * distillation_loss(model(x), teacher(x), temperature)``.
    Masks and assignments stay fixed. ``reassign``: every unpruned weight also keeps a float
    copy, trained by its own gradient (straight through the quantization) at a tenth of
    ``lr``, and after each epoch takes the label of the trained value nearest to it (as
    ``tune.finetune.finetune_centroids``). Nothing else of the model is trained. The
    compressed modules are rebuilt on the trained values at the end (same format). Returns
    the mean loss of each epoch."""
    _check(alpha, epochs, steps)
    mods = compressed_modules(model)
    if not mods:
        raise OptionError("the model has no compressed module: run sparsecodec.torch.compress "
                          "first")
    shared = {n: SharedWeight(m, train_bias, reassign) for n, m in mods.items()}
    for n, s in shared.items():
        _replace(model, n, s)
    groups = [{"params": [q for s in shared.values() for q in (s.codebook, s.bias)
                          if q is not None and q.requires_grad], "lr": lr}]
    if reassign:
        groups.append({"params": [s.latent for s in shared.values()], "lr": lr / 10})

    def relabel() -> None:
        for s in shared.values():
            if s.latent is not None:
                s.reassign(s.latent)

    try:
        return _train(model, groups, loss_fn, data, epochs, steps, teacher, alpha, temperature,
                      lambda: None, relabel, "fine-tune", show_progress)
    finally:
        for n, s in shared.items():
            _replace(model, n, s.encoded())
