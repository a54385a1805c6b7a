"""The two example models shipped with the package, ready for tuning: the digits MLP of the
demo and a small digits CNN (``examples/train_digits_cnn.py``), each with its runtime layer
list, layout, the 360 held-out test digits and 256 training digits for calibration, and
:func:`accuracy`, the evaluation function they are tuned with."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from ..runtime.model import build, weight_names

MLP_SPEC: list[dict[str, Any]] = [
    {"type": "linear", "weight": "fc1.weight", "bias": "fc1.bias", "activation": "relu"},
    {"type": "linear", "weight": "fc2.weight", "bias": "fc2.bias", "activation": "relu"},
    {"type": "linear", "weight": "fc3.weight", "bias": "fc3.bias"},
]


@dataclass
class Example:
    name: str
    tensors: dict[str, np.ndarray]  # in ``layout``
    spec: list[dict[str, Any]]      # the runtime layer list (weights as pack stores them)
    layout: str                     # how ``tensors`` holds its weights ("as-is" or "torch")
    x: np.ndarray                   # test inputs, as the model takes them
    y: np.ndarray                   # test labels
    x_calib: np.ndarray             # training inputs for calibration
    x_train: np.ndarray | None = None  # the whole training split (fine-tuning), as x
    y_train: np.ndarray | None = None


def _load(name: str) -> dict[str, np.ndarray]:
    with resources.files("sparsecodec").joinpath(f"data/{name}").open("rb") as fh:
        with np.load(fh, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def digits_mlp() -> Example:
    """The demo's MLP 64-256-256-10 (weights as (inputs, outputs) matrices)."""
    data = _load("digits_mlp.npz")
    x = data.pop("x_test").astype(np.float64) / 16.0
    y = data.pop("y_test")
    x_train = data.pop("x_train").astype(np.float64) / 16.0
    y_train = data.pop("y_train")
    calib = _load("digits_cnn.npz")["x_calib"].astype(np.float64) / 16.0
    return Example("digits MLP", data, list(MLP_SPEC), "as-is", x, y, calib, x_train, y_train)


def digits_cnn() -> Example:
    """A CNN (conv 1->16, conv 16->32, max-pool, fc 512->64, fc 64->10) in PyTorch's layout,
    trained on the same training digits as the MLP and tested on the same 360."""
    data = _load("digits_cnn.npz")
    spec = json.loads(str(data.pop("spec")))
    calib = data.pop("x_calib").astype(np.float64).reshape(-1, 1, 8, 8) / 16.0
    mlp = _load("digits_mlp.npz")
    x = mlp["x_test"].astype(np.float64).reshape(-1, 1, 8, 8) / 16.0
    x_train = mlp["x_train"].astype(np.float64).reshape(-1, 1, 8, 8) / 16.0
    return Example("digits CNN", data, spec, "torch", x, mlp["y_test"], calib, x_train,
                   mlp["y_train"])


def matrices(tensors: Mapping[str, np.ndarray], spec: Sequence[dict[str, Any]],
             layout: str) -> dict[str, np.ndarray]:
    """The tensors with the weights of ``spec`` as (inputs, outputs) matrices."""
    from .allocate import layers_of

    return {**tensors, **{layer.name: layer.matrix
                          for layer in layers_of(tensors, weight_names(spec), layout)}}


def accuracy(spec: Sequence[dict[str, Any]], x: Any, y: Any, layout: str = "as-is"
             ) -> Callable[[dict[str, np.ndarray]], float]:
    """An evaluation function: the accuracy in points (0-100) of the runtime model ``spec``
    on ``x``, ``y``, computed with the dense weights it is given (in ``layout``)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y)

    def evaluate(tensors: dict[str, np.ndarray]) -> float:
        model = build(spec, matrices(tensors, spec, layout), dense=True)
        return 100.0 * float((model(x).argmax(axis=1) == y).mean())

    return evaluate
