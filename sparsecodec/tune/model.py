"""``pack --target-size / --max-drop``: tune a whole model file with the user's evaluation
function and write the allocation, with its report (a table per layer, a score-vs-size
curve and a figure)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import OptionError, SparseCodecError
from ..io.tensors import Budget
from .allocate import Allocation, Layer, allocate, sensitivity
from .calibrated import hessian
from .capture import layer_hessians
from .evaluation import Evaluator

CURVE_POINTS = 6  # extra allocations (one evaluation each) drawn on the score-vs-size figure


def read_calibration(path: str | os.PathLike, weights: Mapping[str, np.ndarray],
                     layers: Sequence[Layer], spec: Sequence[dict[str, Any]] | None,
                     max_bytes: Budget = "auto") -> dict[str, np.ndarray]:
    """Per-layer ``X^T X`` from a ``.npz`` (read as any input file: a damaged one is a
    FormatError): an array named like one of the weight ``layers`` holds that layer's inputs
    (samples, inputs); an array ``x`` holds model inputs, run through the model description
    ``spec`` (``pack --model``) to capture every layer's inputs."""
    from ..adapters import npz

    arrays = npz.read(path, max_bytes)
    H = {}
    for layer in layers:
        X = arrays.get(layer.name)
        if X is None:
            continue
        if X.ndim != 2 or X.shape[1] != layer.matrix.shape[0] or X.dtype.kind not in "fiu":
            raise OptionError(f"{path}: {layer.name!r} must hold that layer's inputs, numbers "
                              f"of shape (samples, {layer.matrix.shape[0]}); found {X.dtype} "
                              f"{X.shape}")
        H[layer.name] = hessian(X)
    if "x" in arrays:
        if spec is None:
            raise OptionError(f"{path}: an array 'x' of model inputs needs the model "
                              "description (--model) to run them through")
        mats = {layer.name: layer.matrix for layer in layers}
        H = {**layer_hessians(spec, {**weights, **mats}, arrays["x"]), **H}
    if not H:
        names = [layer.name for layer in layers]
        raise OptionError(f"{path}: no array named like a weight tensor ({', '.join(names[:4])}"
                          f"{', ...' if len(names) > 4 else ''}) and no 'x'")
    return H


def tune_and_pack(weights: Mapping[str, np.ndarray], output: str | os.PathLike,
                  evaluate: Callable[[dict], Any], *, target_size: int | None = None,
                  max_drop: float | None = None,
                  hessians: Mapping[str, np.ndarray] | None = None, layout: Any = "as-is",
                  model: Any = None, show: bool = True, curve: bool = True,
                  max_bytes: Budget = "auto", source: Any = None, settings: Any = None
                  ) -> tuple[Allocation, list[Any], list[dict]]:
    """Allocate (``tune.allocate``) for a file of at most ``target_size`` bytes or a score
    drop of at most ``max_drop``, pack it to ``output``, and return (allocation, pack rows,
    score-vs-size points). The file target counts every byte: the tensors left as arrays and
    the container's header are estimated first, then the allocation is remade with the
    excess taken off while the written file is larger (at most 3 times). ``source``: what
    ``pack`` reads (the model file, whose own layouts then apply; default ``weights``);
    ``settings``: the menu (``tune.sensitivity``)."""
    from ..pack import pack

    src = weights if source is None else source
    pack_layout = layout if isinstance(layout, str) else "auto"  # a function: the source's
    if (target_size is None) == (max_drop is None):
        raise OptionError("give exactly one of --target-size and --max-drop")
    sens = sensitivity(weights, evaluate, layout=layout, hessians=hessians, show=show,
                       settings=settings)
    weight_names = {layer.name for layer in sens.layers}
    if target_size is not None:
        other = sum(np.asarray(a).nbytes for n, a in weights.items() if n not in weight_names)
        budget = float(target_size) - other - 4096
        for _ in range(3):
            if budget <= 0:
                raise OptionError(f"--target-size {target_size:,}: the tensors kept as arrays "
                                  f"alone take {other:,} bytes")
            alloc = allocate(weights, sens=sens, target_bytes=budget)
            rows = pack(src, output, plan=alloc, layout=pack_layout, model=model,
                        max_bytes=max_bytes)
            excess = os.path.getsize(output) - target_size
            if excess <= 0:
                break
            budget -= excess
        else:
            raise SparseCodecError(f"--target-size {target_size:,}: the file stays "
                                   f"{excess:,} bytes over after 3 allocations")
    else:
        alloc = allocate(weights, sens=sens, max_drop=float(max_drop))  # type: ignore[arg-type]
        rows = pack(src, output, plan=alloc, layout=pack_layout, model=model,
                    max_bytes=max_bytes)
    points = score_curve(sens, alloc) if curve else []
    return alloc, rows, points


def score_curve(sens: Any, alloc: Allocation, points: int = CURVE_POINTS) -> list[dict]:
    """Score against the bytes of the weight layers: allocations for byte budgets spread
    between the smallest menu choice and the largest, each evaluated (one evaluation per
    point, cached), plus the chosen one; each point keeps its ``allocation``."""
    lo = sum(min(c.nbytes for c in cs) for cs in sens.candidates.values())
    hi = sum(max(c.nbytes for c in cs) for cs in sens.candidates.values())
    out = [{"bytes": alloc.layer_bytes, "score": alloc.score, "chosen": True,
            "allocation": alloc}]
    for b in np.geomspace(max(lo, 1) * 1.01, max(hi, 2), points):
        a = allocate({}, sens=sens, target_bytes=float(b))
        out.append({"bytes": a.layer_bytes, "score": a.score, "chosen": False,
                    "allocation": a})
    return sorted(out, key=lambda p: p["bytes"])


def plot(alloc: Allocation, points: list[dict], path: str) -> str:
    """Two panels: bits per weight chosen per layer, and score against weight bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    rows = alloc.table()
    a1.bar(range(len(rows)), [r["bits_per_weight"] for r in rows], color="tab:blue")
    a1.set_xticks(range(len(rows)), [r["layer"] for r in rows], rotation=30, ha="right",
                  fontsize=8)
    for i, r in enumerate(rows):
        a1.text(i, r["bits_per_weight"], r["setting"], ha="center", va="bottom", fontsize=7,
                rotation=90)
    a1.set_ylabel("bits per weight")
    a1.set_title("allocation")
    xs = [p["bytes"] / 1024 for p in points]
    a2.plot(xs, [p["score"] for p in points], "o-", color="tab:gray", label="allocations")
    a2.plot([alloc.layer_bytes / 1024], [alloc.score], "r*", ms=12, label="chosen")
    a2.axhline(alloc.reference, ls=":", color="k", lw=1, label="float model")
    a2.set_xscale("log")
    a2.set_xlabel("weight layers, KiB")
    a2.set_ylabel("score")
    a2.legend(fontsize=8)
    a2.set_title("score vs size")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(os.path.abspath(path))


__all__ = ["Evaluator", "plot", "read_calibration", "score_curve", "tune_and_pack"]
