"""A sharded pack: an index (``model.spc.index.json``) naming, for every tensor, the container
shard that holds it, as safetensors' sharded checkpoints do. ``ShardedFile`` reads it like one
file: ``keys()``, ``metadata`` (the pack record of every tensor), ``f[name]``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import FormatError
from .container import ContainerFile
from .files import read_small, sibling
from .tensors import MAX_NAME, Budget, TensorInfo, parse_json

INDEX_SUFFIX = ".index.json"


def index_for(path: str | os.PathLike) -> Path | None:
    """The index a path means: itself if it is one, ``path.index.json`` if ``path`` does not
    exist but that does, else None."""
    p = Path(path)
    if p.name.endswith(INDEX_SUFFIX):
        return p
    if not p.exists() and Path(str(p) + INDEX_SUFFIX).exists():
        return Path(str(p) + INDEX_SUFFIX)
    return None


def files_of(path: str | os.PathLike) -> list[Path]:
    """The files a (possibly sharded) pack consists of: the index and its shards, or the file."""
    index = index_for(path)
    if index is None:
        return [Path(path)]
    with ShardedFile(index, verify=False) as f:
        return [index, *(index.parent / s for s in dict.fromkeys(f.weight_map.values()))]


MAX_INDEX = 64 << 20  # bytes of an index file
INDEX_MEMBERS = {"format", "version", "metadata", "weight_map"}


class ShardedFile(Mapping[str, Any]):
    """The tensors of a sharded pack, read through its index. Shards must be regular files
    whose real path (symlinks resolved) is inside the index's folder; each is opened as a
    container on first use."""

    def __init__(self, index: str | os.PathLike, verify: bool = True,
                 max_bytes: Budget = "auto", mmap: bool = True):
        self.path = Path(index)
        self.verify = verify
        self.max_bytes = max_bytes
        self.mmap = mmap
        h = parse_json(read_small(self.path, "index", MAX_INDEX), f"{index}: the index")
        if not isinstance(h, dict) or set(h) != INDEX_MEMBERS or \
                h["format"] != "sparsecodec-index":
            raise FormatError(f"{index}: not a sparsecodec index (exactly format, version, "
                              "metadata, weight_map)")
        if not (isinstance(h["version"], int) and not isinstance(h["version"], bool)
                and h["version"] == 1):
            raise FormatError(f"{index}: unsupported index version {str(h['version'])[:20]}")
        if not isinstance(h["weight_map"], dict) or not isinstance(h["metadata"], dict) or \
                not all(isinstance(v, str) for v in h["metadata"].values()):
            raise FormatError(f"{index}: metadata must map strings to strings and weight_map "
                              "be an object")
        self.metadata: dict[str, str] = h["metadata"]
        self.weight_map: dict[str, str] = {}
        for name, file in h["weight_map"].items():
            if not 0 < len(name) <= MAX_NAME:
                raise FormatError(f"{index}: tensor names are 1..{MAX_NAME} characters")
            self.weight_map[name] = file
        for file in dict.fromkeys(self.weight_map.values()):  # each shard once, not per tensor
            sibling(self.path, file)  # a plain name: refused here, before any is opened
        self._open: dict[str, ContainerFile] = {}

    def _shard(self, file: str) -> ContainerFile:
        if file not in self._open:
            real = sibling(self.path, file)  # resolved now: a symlink may have changed
            if not real.is_file():
                raise FormatError(f"{self.path}: shard {file} is missing or not a regular "
                                  "file")
            self._open[file] = ContainerFile(real, self.verify, max_bytes=self.max_bytes,
                                             mmap=self.mmap)
        return self._open[file]

    def __getitem__(self, name: str) -> Any:
        shard = self._shard(self.weight_map[name])
        if name not in shard:
            raise FormatError(f"{self.path}: shard {self.weight_map[name]} does not hold "
                              f"{name!r}")
        return shard[name]

    def info(self, name: str) -> TensorInfo:
        """Format, shape, dtype and stored bytes of a tensor, from its shard's header."""
        shard = self._shard(self.weight_map[name])
        if name not in shard:
            raise FormatError(f"{self.path}: shard {self.weight_map[name]} does not hold "
                              f"{name!r}")
        return shard.info(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.weight_map)

    def __len__(self) -> int:
        return len(self.weight_map)

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()

    def __enter__(self) -> ShardedFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
