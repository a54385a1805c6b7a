"""ONNX models: the initializers (the weights) as named arrays, and a model written back with
its initializers replaced (optional: ``pip install onnx``). Graph, operators and every other
field are kept as they were, so the written model runs wherever the original did."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import FormatError, converted
from ..io.files import atomic_output


def _lib() -> Any:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FormatError("reading or writing .onnx needs the onnx package: "
                          "python -m pip install onnx") from exc
    return onnx, numpy_helper


def _external_location(init: Any, folder: str, path: str | os.PathLike) -> None:
    """Refuse external data outside the model's folder (an absolute path, ``..``, a symlink
    out) or in something other than a regular file."""
    entries = {e.key: e.value for e in init.external_data}
    loc = entries.get("location", "")
    at = f"{path}: initializer {init.name[:80]!r}: external data {loc[:80]!r}"
    real = os.path.realpath(os.path.join(folder, loc))
    if not loc or os.path.isabs(loc) or "\0" in loc or \
            os.path.commonpath([real, folder]) != folder:
        raise FormatError(f"{at}: must name a file inside the model's folder {folder}")
    if not os.path.isfile(real):
        raise FormatError(f"{at}: is missing or not a regular file")


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The initializers, by name. External data (``location`` in the tensor) is read from the
    model's own folder, never from the current one, and only from files inside it."""
    onnx, numpy_helper = _lib()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others from protobuf
        raise FormatError(f"{path}: not a readable ONNX model ({exc})") from None
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    out = {}
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            _external_location(init, folder, path)
        # onnx raises ValueError, OSError and errors of its own
        with converted(f"{path}: initializer {init.name[:80]!r} is unreadable", (Exception,)):
            out[init.name] = numpy_helper.to_array(init, base_dir=folder)
    return out


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
          template: str | os.PathLike | None = None) -> None:
    """Write an ONNX model: ``template``'s graph with the initializers named in ``tensors``
    replaced (same names, shapes and dtypes). Without a template there is no graph to write."""
    if template is None:
        raise FormatError("writing .onnx needs the original model as a template (the graph is "
                          "not stored in a packed file): unpack --template MODEL.onnx")
    onnx, numpy_helper = _lib()
    model = onnx.load(str(template), load_external_data=False)
    by_name = {init.name: init for init in model.graph.initializer}
    for name, value in tensors.items():
        if name not in by_name:
            continue  # not an initializer of this graph
        old = numpy_helper.to_array(by_name[name])
        new = np.asarray(value)
        if new.shape != old.shape:
            raise FormatError(f"{name}: shape {new.shape} does not match the model's "
                              f"{old.shape}")
        by_name[name].CopyFrom(numpy_helper.from_array(new.astype(old.dtype), name))
    data = model.SerializeToString()  # onnx.save would name the temporary by its descriptor
    with atomic_output(path) as fh:
        fh.write(data)
