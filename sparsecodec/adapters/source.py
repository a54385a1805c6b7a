"""Tensor sources: named tensors read one at a time, so that ``pack`` holds one tensor in
memory whatever the size of the model.

A source is a ``Mapping[str, ndarray]``: ``names`` and ``info(name)`` (shape, dtype) come from
the file's header; ``source[name]`` reads that tensor only. Sources are picklable (they hold
their path and reopen the file in whichever process uses them), so process pools and Dask
workers read their own tensors straight from the input files. Each framework's module
(``adapters/*.py``) has its own source, beside its eager ``read`` and its ``write``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np


class TensorSource(Mapping[str, np.ndarray]):
    """Named tensors of one input; subclasses read lazily. A subclass lists its tensors in
    ``names`` (or overrides ``__iter__`` and ``__len__``) and reads one in ``__getitem__``;
    ``dict(source)`` reads them all."""

    path: Path
    names: list[str]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        """(shape, dtype) of a tensor without reading its data."""
        a = self[name]
        return a.shape, a.dtype

    def nbytes(self, name: str) -> int:
        shape, dtype = self.info(name)
        return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def layout(self, name: str) -> str:
        """How the input stores this weight (``pack --layout auto``): "torch" for (out, in)
        and OIHW, "keras" for (in, out) and HWIO, "as-is" when nothing says."""
        return "as-is"

    def subset(self, names: list[str]) -> TensorSource:
        """What a worker needs to read ``names``: a file source is its path, so itself."""
        return self

    def __getstate__(self) -> dict[str, Any]:  # open handles stay in their process
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class ArraySource(TensorSource):
    """Arrays already in memory (or any mapping of them), with the layout of each when the
    file they came from says it (``layouts``; "as-is" for the others)."""

    def __init__(self, tensors: Mapping[str, Any], layouts: Mapping[str, str] | None = None):
        self.path = Path("<memory>")
        self.tensors = dict(tensors)
        self.layouts = dict(layouts or {})

    def layout(self, name: str) -> str:
        return self.layouts.get(name, "as-is")

    def __getitem__(self, name: str) -> np.ndarray:
        return np.asarray(self.tensors[name])

    def info(self, name: str) -> tuple[tuple[int, ...], np.dtype]:
        a = self.tensors[name]
        return tuple(np.shape(a)), np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype

    def subset(self, names: list[str]) -> TensorSource:
        """Only these arrays, so that a worker process is not sent every tensor."""
        return ArraySource({n: self.tensors[n] for n in names},
                           {n: self.layouts[n] for n in names if n in self.layouts})

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)
