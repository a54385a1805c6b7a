"""A sharded pack: an index (``model.spc.index.json``) naming, for every tensor, the container
shard that holds it, as safetensors' sharded checkpoints do. ``ShardedFile`` reads it like one
file: ``keys()``, ``metadata`` (the pack record of every tensor), ``f[name]``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import FormatError
from .container import ContainerFile

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


class ShardedFile(Mapping[str, Any]):
    def __init__(self, index: str | os.PathLike, verify: bool = True):
        self.path = Path(index)
        self.verify = verify
        try:
            h = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise FormatError(f"{index}: not a readable index ({exc})") from exc
        if (not isinstance(h, dict) or h.get("format") != "sparsecodec-index"
                or not isinstance(h.get("weight_map"), dict)
                or not isinstance(h.get("metadata"), dict)):
            raise FormatError(f"{index}: not a sparsecodec index (format, metadata, weight_map)")
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in h["metadata"].items()}
        self.weight_map: dict[str, str] = {}
        for name, file in h["weight_map"].items():
            if not isinstance(file, str) or Path(file).name != file:
                raise FormatError(f"{index}: shard {file!r} of {name!r} must be a file name "
                                  "in the index's folder")
            self.weight_map[name] = file
        self._open: dict[str, ContainerFile] = {}

    def _shard(self, file: str) -> ContainerFile:
        if file not in self._open:
            self._open[file] = ContainerFile(self.path.parent / file, self.verify)
        return self._open[file]

    def __getitem__(self, name: str) -> Any:
        shard = self._shard(self.weight_map[name])
        if name not in shard:
            raise FormatError(f"{self.path}: shard {self.weight_map[name]} does not hold "
                              f"{name!r}")
        return shard[name]

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
