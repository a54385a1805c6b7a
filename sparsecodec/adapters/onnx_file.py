"""ONNX models: the weights as named arrays, and a model written back with them replaced
(optional: ``pip install onnx``). Weights are the graph's initializers and the tensors of its
``Constant`` nodes (many exporters, PaddleOCR's among them, store weights that way), in the main
graph and in subgraphs (``If``/``Loop`` bodies); a Constant's tensor is named by the node's
output. Graph, operators and every other field are kept as they were, so the written model runs
wherever the original did."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import FormatError, converted
from ..io.files import atomic_output
from .source import ArraySource, TensorSource


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


def _load(path: str | os.PathLike) -> Any:
    onnx = _lib()[0]
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others from protobuf
        raise FormatError(f"{path}: not a readable ONNX model ({exc})") from None


def _graphs(model: Any) -> Iterator[Any]:
    """The main graph, then every subgraph (``If``/``Loop`` bodies, nested), breadth first."""
    onnx = _lib()[0]
    todo = [model.graph]
    while todo:
        g = todo.pop(0)
        yield g
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    todo.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    todo.extend(attr.graphs)


def weights(model: Any) -> Iterator[tuple[str, Any]]:
    """(name, TensorProto) of every weight: initializers, then the ``value`` tensors of
    ``Constant`` nodes (named by their output), graph by graph."""
    onnx = _lib()[0]
    for g in _graphs(model):
        for init in g.initializer:
            yield init.name, init
        for node in g.node:
            if (node.op_type == "Constant" and node.domain in ("", "ai.onnx")
                    and len(node.output) == 1 and node.output[0]):
                for attr in node.attribute:
                    if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                        yield node.output[0], attr.t


def _layouts(model: Any) -> dict[str, str]:
    """The layout of each weight, from the operators that use it: the B input of ``MatMul``
    is (inputs, outputs): "as-is"; of ``Gemm``, "torch" with ``transB=1`` (outputs, inputs),
    else "as-is"; the W input of ``Conv`` and ``ConvTranspose`` is OIHW: "torch". Weights no
    such operator uses are left out (they are packed as-is)."""
    out: dict[str, str] = {}
    for g in _graphs(model):
        for node in g.node:
            if len(node.input) < 2 or node.domain not in ("", "ai.onnx"):
                continue
            if node.op_type == "MatMul":
                out.setdefault(node.input[1], "as-is")
            elif node.op_type == "Gemm":
                trans = next((a.i for a in node.attribute if a.name == "transB"), 0)
                out.setdefault(node.input[1], "torch" if trans else "as-is")
            elif node.op_type in ("Conv", "ConvTranspose"):
                out.setdefault(node.input[1], "torch")
    return out


def _arrays(model: Any, path: str | os.PathLike) -> dict[str, np.ndarray]:
    onnx, numpy_helper = _lib()
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    out: dict[str, np.ndarray] = {}
    for name, tensor in weights(model):
        at = f"{path}: tensor {name[:80]!r}"
        if name in out:
            raise FormatError(f"{at} is defined twice (an initializer and a Constant, or two "
                              "graphs)")
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            _external_location(tensor, folder, path)
        # onnx raises ValueError, OSError and errors of its own
        with converted(f"{at} is unreadable", (Exception,)):
            out[name] = numpy_helper.to_array(tensor, base_dir=folder)
    return out


def read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The weights (initializers and Constant-node tensors), by name. External data
    (``location`` in the tensor) is read from the model's own folder, never from the current
    one, and only from files inside it."""
    return _arrays(_load(path), path)


def read_with_layouts(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``read``, and the layout of each weight the operators tell (``_layouts``), from one
    load of the model."""
    model = _load(path)
    return _arrays(model, path), _layouts(model)


def source(path: str | os.PathLike, max_bytes: Any = "auto") -> TensorSource:
    """The weights read whole, each with the layout its operators tell."""
    return ArraySource(*read_with_layouts(path))


def write(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
          template: str | os.PathLike | None = None) -> None:
    """Write an ONNX model: ``template``'s graph with the weights named in ``tensors``
    (initializers and Constant-node tensors) replaced (same names, shapes and dtypes). Without
    a template there is no graph to write."""
    if template is None:
        raise FormatError("writing .onnx needs the original model as a template (the graph is "
                          "not stored in a packed file): unpack --template MODEL.onnx")
    numpy_helper = _lib()[1]
    model = _load(template)
    by_name = dict(weights(model))
    for name, value in tensors.items():
        if name not in by_name:
            continue  # not a weight of this graph
        old = numpy_helper.to_array(by_name[name])
        new = np.asarray(value)
        if new.shape != old.shape:
            raise FormatError(f"{name}: shape {new.shape} does not match the model's "
                              f"{old.shape}")
        by_name[name].CopyFrom(numpy_helper.from_array(new.astype(old.dtype),
                                                       by_name[name].name))
    data = model.SerializeToString()  # onnx.save would name the temporary by its descriptor
    with atomic_output(path) as fh:
        fh.write(data)
