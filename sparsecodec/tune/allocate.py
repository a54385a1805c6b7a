"""Per-layer settings for a whole model: measure each layer's score drop and file bytes on a
menu of settings (:func:`sensitivity`), then choose one setting per layer (:func:`allocate`)
for the smallest file within a score drop, or the least drop within a file size.

A **setting** is magnitude pruning (or, with calibration data, SparseGPT's pruning) to
``prune`` percent, the survivors shared among ``levels`` k-means values (GPTQ onto those
levels with calibration data), or a rank-``rank`` factorization (``tune.lowrank``). Each
candidate is encoded exactly as ``pack`` will store it (``auto``: the format adding the
fewest bytes to the file), so the bytes are the file's, not an estimate.

**Sensitivity** of a layer to a setting is the score drop when only that layer is replaced:
one evaluation per (layer, setting), cached (``Evaluator``). **Allocation** assumes the drops
add up (clipped at 0) and solves the multiple-choice knapsack exactly by dynamic programming
on a grid (200 cells of the drop budget, 1000 of the byte budget; each rounded up, so the
additive model's constraint always holds). The chosen combination is then evaluated: when
the real drop exceeds ``max_drop`` (layers interact), the additive budget shrinks by the
excess and the choice is remade, at most ``rounds`` times; the best verified choice wins.
A run costs ``1 + layers x menu`` evaluations plus one per round.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import OptionError
from ..formats.base import Encoded, Matrix
from ..io.container import file_cost
from ..quantize import kmeans, prune
from .calibrated import gptq, output_error, refit_levels, sparsegpt
from .evaluation import Evaluator
from .lowrank import LowRank, lowrank

PRUNES = (0.0, 50.0, 70.0, 80.0, 90.0, 95.0)
LEVELS = (4, 8, 16, 32, 64)
ERRORS = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6)  # relative weight errors for sc.compress
RANK_FRACTIONS = (1 / 8, 1 / 4)  # of min(n, m), in the menu of layers with n, m >= 64
BUDGET_FACTORS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # x max_drop, verified in turn


@dataclass(frozen=True)
class Setting:
    """One way to store a layer: ``prune`` percent zeros and ``levels`` shared k-means values
    (None: floats kept); or a relative weight ``error`` target, for which ``sc.compress``
    searches the quantizer (uniform, entropy-constrained, trellis) and the format; or a
    low-rank factorization of ``rank`` with ``levels`` values per factor."""

    prune: float = 0.0
    levels: int | None = 32
    rank: int | None = None
    error: float | None = None  # a relative error target: sc.compress's quantizer and format

    @property
    def label(self) -> str:
        if self.rank is not None:
            return f"rank {self.rank}, {self.levels} values"
        if self.error is not None:
            return f"error {self.error:g}"
        q = "float" if self.levels is None else f"{self.levels} values"
        return f"prune {self.prune:g}%, {q}"


QUICK = {"prunes": (0.0, 50.0, 80.0, 90.0), "levels": (4, 16), "errors": (0.1, 0.3),
         "ranks": False}  # 10 settings a layer instead of 38


def menu(shape: tuple[int, int], prunes: Sequence[float] = PRUNES,
         levels: Sequence[int] = LEVELS, errors: Sequence[float] = ERRORS,
         ranks: bool = True) -> list[Setting]:
    """The default settings for a matrix of ``shape``: every prune x levels pair, every
    error target, plus ranks 1/8 and 1/4 of the smaller side (32 values per factor) for
    matrices of 64+ rows and columns (38 in all). ``menu(shape, **QUICK)``: 10 of them."""
    out = [Setting(float(p), int(k)) for p in prunes for k in levels]
    out += [Setting(0.0, None, error=float(e)) for e in errors]
    if ranks and min(shape) >= 64:
        out += [Setting(0.0, 32, max(1, int(min(shape) * f))) for f in RANK_FRACTIONS]
    return out


@dataclass
class Candidate:
    setting: Setting
    stored: Encoded | LowRank
    matrix: np.ndarray  # what the layer computes with, (inputs, outputs)
    nbytes: int         # bytes it adds to the file
    error: float        # relative weight error ||W - Q|| / ||W||
    output_error: float | None = None  # ||X(W - Q)|| / ||X W|| with calibration data


def stored_cost(stored: Encoded | LowRank) -> int:
    """Bytes a stored layer adds to a container (every part's ``file_cost``)."""
    if isinstance(stored, LowRank):
        return sum(file_cost(p) for p in stored.parts.values())
    return file_cost(stored)


def _calibrated(W: np.ndarray, free: np.ndarray, H: np.ndarray, setting: Setting
                ) -> np.ndarray:
    """The calibration-aware version of the data-free ``free``: SparseGPT (pruning) or GPTQ
    onto the same levels, the levels then refitted to the output error; the data-free one if
    that is still better on the calibration data."""
    levels = np.unique(free[free != 0])
    book = np.append(levels, 0.0) if levels.size else np.zeros(1)
    if setting.prune:
        Q = sparsegpt(W, H, sparsity=setting.prune / 100, codebook=book).values
    else:
        Q = gptq(W, H, codebook=book).values
    Q = refit_levels(W, Q, H)
    return Q if output_error(W, Q, H) <= output_error(W, free, H) else free


def realize(W: np.ndarray, setting: Setting, H: np.ndarray | None = None,
            format: str = "auto") -> Candidate:
    """The candidate of ``setting`` for the matrix ``W`` (inputs, outputs): data-free, or
    calibration-aware with ``H = X^T X`` of the layer's inputs (:func:`_calibrated`)."""
    from ..pack import _encode  # pack's choice: the format adding the fewest bytes

    if setting.rank is not None:
        lr = lowrank(W, setting.rank, levels=setting.levels or 0, format=format)
        Q = lr.decode()
        stored: Encoded | LowRank = lr
    else:
        if setting.error is not None:
            from ..targets import compress

            Q = compress(W, rel_error=setting.error).decode()
        else:
            P = prune(W, setting.prune).weights if setting.prune else W
            Q = P if setting.levels is None else kmeans(P, setting.levels).values
        if H is not None and (setting.levels is not None or setting.error is not None):
            Q = _calibrated(W, Q, H, setting)
        stored = _encode(Matrix(Q), format)
    norm = float(np.linalg.norm(W.astype(np.float64))) or 1.0
    err = float(np.linalg.norm(W.astype(np.float64) - Q)) / norm
    out_err = None if H is None else output_error(W, Q, H)
    return Candidate(setting, stored, Q, stored_cost(stored), err, out_err)


Layout = Callable[[str], str]


@dataclass
class Layer:
    """A weight tensor under tuning: its name, its (inputs, outputs) matrix and how to turn a
    matrix back into the tensor the evaluation function expects."""

    name: str
    matrix: np.ndarray
    transform: str
    shape: tuple[int, ...]

    def tensor(self, Q: np.ndarray) -> np.ndarray:
        from ..pack import from_matrix

        return from_matrix(np.asarray(Q, self.matrix.dtype), self.transform, self.shape)


def layers_of(weights: Mapping[str, np.ndarray], names: Sequence[str] | None = None,
              layout: str | Layout = "as-is") -> list[Layer]:
    """The weight matrices of ``weights`` to tune: ``names`` (default: every float tensor of
    2+ dimensions), each as pack lays it out (``layout``: a name or a function of the tensor
    name, as ``pack``'s ``layout``)."""
    from ..pack import to_matrix

    pick = [n for n in weights if np.asarray(weights[n]).dtype.kind == "f"
            and np.asarray(weights[n]).ndim >= 2] if names is None else list(names)
    out = []
    for n in pick:
        if n not in weights:
            raise OptionError(f"layer {n!r} is not a tensor of the model")
        a = np.asarray(weights[n])
        lay = layout(n) if callable(layout) else layout
        W, transform = to_matrix(a, "as-is" if lay == "auto" else lay)
        out.append(Layer(n, W, transform, a.shape))
    if not out:
        raise OptionError("no weight tensor to tune (no float tensor of 2+ dimensions)")
    return out


@dataclass
class Sensitivity:
    """Per layer, the candidates of its menu and the score drop of each (layer alone)."""

    reference: float
    candidates: dict[str, list[Candidate]]
    drops: dict[str, list[float]]
    evaluator: Evaluator
    layers: list[Layer]

    def table(self) -> list[dict[str, Any]]:
        return [{"layer": n, "setting": c.setting.label, "bytes": c.nbytes, "drop": d,
                 "error": c.error, "output_error": c.output_error}
                for n, cs in self.candidates.items()
                for c, d in zip(cs, self.drops[n], strict=True)]


def sensitivity(weights: Mapping[str, np.ndarray], evaluate: Callable[[dict], Any], *,
                layers: Sequence[str] | None = None, layout: str | Layout = "as-is",
                settings: Mapping[str, Sequence[Setting]] | Sequence[Setting] | None = None,
                hessians: Mapping[str, np.ndarray] | None = None, format: str = "auto",
                show: bool = False, evaluator: Evaluator | None = None) -> Sensitivity:
    """Each layer's score drop and bytes under each setting of its menu (``settings``: one
    list for all layers, a list per layer name, or the default :func:`menu`), the other layers
    left as they are. ``hessians``: per layer name, ``X^T X`` of its inputs (calibration-aware
    candidates). Costs ``1 + sum of menu sizes`` evaluations (fewer when cached)."""
    L = layers_of(weights, layers, layout)
    menus = {}
    for layer in L:
        if settings is None:
            menus[layer.name] = menu(layer.matrix.shape)
        elif isinstance(settings, Mapping):
            menus[layer.name] = list(settings.get(layer.name, menu(layer.matrix.shape)))
        else:
            menus[layer.name] = list(settings)
        menus[layer.name] = [s for s in menus[layer.name]  # a rank the layer cannot have
                             if s.rank is None or s.rank < min(layer.matrix.shape)]
        if not menus[layer.name]:
            raise OptionError(f"no setting of the menu applies to layer {layer.name!r}")
    ev = evaluator or Evaluator(evaluate, weights, show,
                                total=1 + sum(len(m) for m in menus.values()))
    ref = ev.reference
    cands: dict[str, list[Candidate]] = {}
    drops: dict[str, list[float]] = {}
    for layer in L:
        H = None if hessians is None else hessians.get(layer.name)
        cands[layer.name] = []
        drops[layer.name] = []
        for s in menus[layer.name]:
            c = realize(layer.matrix, s, H, format)
            score = ev({layer.name: layer.tensor(c.matrix)}, f"{layer.name}: {s.label}")
            cands[layer.name].append(c)
            drops[layer.name].append(ref - score)
    return Sensitivity(ref, cands, drops, ev, L)


def _knapsack(costs: list[np.ndarray], gains: list[np.ndarray], budget: float,
              cells: int) -> list[int] | None:
    """Minimise the sum of ``gains`` picking one option per group with the sum of ``costs``
    at most ``budget`` (costs rounded up to ``budget / cells`` units). None: nothing fits."""
    unit = budget / cells if budget > 0 else 1.0
    INF = math.inf
    best = np.full(cells + 1, INF)
    best[0] = 0.0
    picks = []
    for c, g in zip(costs, gains, strict=True):
        units = np.ceil(np.maximum(c, 0) / unit - 1e-9).astype(np.int64) if budget > 0 else \
            np.where(c > 0, cells + 1, 0)
        new = np.full(cells + 1, INF)
        arg = np.full(cells + 1, -1, np.int64)
        for j, (u, gj) in enumerate(zip(units, g, strict=True)):
            if u > cells:
                continue
            cand = np.full(cells + 1, INF)
            cand[u:] = best[:cells + 1 - u] + gj
            better = cand < new
            new[better] = cand[better]
            arg[better] = j
        picks.append(arg)
        best = new
    end = int(np.argmin(best))
    if not math.isfinite(best[end]):
        return None
    out = []
    for c, arg in zip(reversed(costs), reversed(picks), strict=True):
        j = int(arg[end])
        out.append(j)
        u = (int(np.ceil(max(c[j], 0) / unit - 1e-9)) if budget > 0 else (1 if c[j] > 0 else 0))
        end -= u
    return out[::-1]


@dataclass
class Allocation:
    """The chosen setting per layer, what each stores, the model's tensors with those layers
    replaced (``tensors``), its score, and the bytes of the chosen layers."""

    choices: dict[str, Candidate]
    tensors: dict[str, np.ndarray]
    score: float
    reference: float
    layer_bytes: int
    evaluations: int
    sensitivity: Sensitivity
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drop(self) -> float:
        return self.reference - self.score

    def stored(self) -> dict[str, Encoded | LowRank]:
        return {n: c.stored for n, c in self.choices.items()}

    def table(self) -> list[dict[str, Any]]:
        return [{"layer": n, "setting": c.setting.label, "format": c.stored.format,
                 "bytes": c.nbytes, "bits_per_weight": 8 * c.nbytes / c.matrix.size,
                 "error": c.error} for n, c in self.choices.items()]


def allocate(weights: Mapping[str, np.ndarray], evaluate: Callable[[dict], Any] | None = None,
             *, target_bytes: float | None = None, max_drop: float | None = None,
             sens: Sensitivity | None = None, refine: int = 24, **options: Any
             ) -> Allocation:
    """One setting per layer: the smallest layers within ``max_drop`` of the reference score,
    or the least additive drop within ``target_bytes`` bytes of weight layers (give one). The
    other options are :func:`sensitivity`'s (or pass its result as ``sens``). See the module
    docstring for the method and its cost."""
    if (target_bytes is None) == (max_drop is None):
        raise OptionError("allocate: give exactly one of target_bytes= and max_drop=")
    for what, v in (("target_bytes", target_bytes), ("max_drop", max_drop)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v) or v < 0):
            raise OptionError(f"allocate: {what} must be a finite number >= 0, found {v!r}")
    if sens is None:
        if evaluate is None:
            raise OptionError("allocate: give evaluate= (or sens=)")
        sens = sensitivity(weights, evaluate, **options)
    ev = sens.evaluator
    names = [layer.name for layer in sens.layers]
    nbytes = [np.array([c.nbytes for c in sens.candidates[n]], float) for n in names]
    drops = [np.maximum(np.array(sens.drops[n], float), 0.0) for n in names]
    by_name = {layer.name: layer for layer in sens.layers}

    def verify(pick: list[int]) -> tuple[float, dict[str, np.ndarray]]:
        tensors = {n: by_name[n].tensor(sens.candidates[n][j].matrix)
                   for n, j in zip(names, pick, strict=True)}
        return ev(tensors, "the allocation"), tensors

    history: list[dict[str, Any]] = []
    best: tuple[list[int], float, dict[str, np.ndarray]] | None = None
    if target_bytes is not None:
        # equal drops (a coarse score ties many) go to the candidate of least error
        errs = [np.array([c.output_error if c.output_error is not None else c.error
                          for c in sens.candidates[n]]) for n in names]
        pick = _knapsack(nbytes, [d + 1e-9 * e for d, e in zip(drops, errs, strict=True)],
                         float(target_bytes), 1000)
        if pick is None:
            smallest = int(sum(b.min() for b in nbytes))
            raise OptionError(f"allocate: no setting fits {target_bytes:,.0f} bytes; the "
                              f"smallest menu choice takes {smallest:,} bytes")
        score, tensors = verify(pick)
        history.append({"budget": target_bytes, "score": score})
        best = (pick, score, tensors)
    else:
        assert max_drop is not None
        feasible: list[tuple[float, list[int], float, dict[str, np.ndarray]]] = []
        first = None
        for factor in BUDGET_FACTORS:  # the additive model is only a guide: verify a sweep
            allowed = float(max_drop) * factor
            pick = _knapsack(drops, nbytes, allowed, 200)
            if pick is None:
                continue
            first = first or pick
            size = float(sum(nbytes[i][j] for i, j in enumerate(pick)))
            if feasible and size >= feasible[0][0]:
                continue  # cannot beat the smallest feasible pick found
            score, tensors = verify(pick)
            real = sens.reference - score
            history.append({"allowed": allowed, "drop": real, "bytes": size})
            if real <= max_drop + 1e-12:
                feasible.insert(0, (size, pick, score, tensors))
        if feasible:
            _, pick, score, tensors = feasible[0]
            best = (pick, score, tensors)
        else:  # the additive model failed even at the smallest budget: repair greedily
            best = _repair(first if first is not None else
                           [int(np.argmin(b)) for b in nbytes],
                           sens, names, verify, float(max_drop), history)
        if refine:
            best = _descend(best, sens, names, verify, float(max_drop), history, refine)
    pick, score, tensors = best
    ev.done()
    chosen = {n: sens.candidates[n][j] for n, j in zip(names, pick, strict=True)}
    return Allocation(chosen, {**ev.base, **tensors}, score, sens.reference,
                      int(sum(c.nbytes for c in chosen.values())), ev.calls, sens, history)


def _repair(pick: list[int], sens: Sensitivity, names: list[str], verify: Any,
            max_drop: float, history: list[dict[str, Any]], steps: int = 64
            ) -> tuple[list[int], float, dict[str, np.ndarray]]:
    """Upgrade one layer at a time until the real drop is within ``max_drop``: each step
    tries, for every layer, its cheapest candidate of lower error than the current one, and
    keeps the try of the best score (ties: the fewest added bytes). One evaluation per layer
    per step."""
    pick = list(pick)
    score, tensors = verify(pick)
    for _ in range(steps):
        if sens.reference - score <= max_drop + 1e-12:
            break
        tries = []
        for i, n in enumerate(names):
            cs = sens.candidates[n]
            cur = cs[pick[i]]
            better = [j for j, c in enumerate(cs) if c.error < cur.error]
            if not better:
                continue
            j = min(better, key=lambda j: (cs[j].nbytes, cs[j].error))
            trial = pick[:i] + [j] + pick[i + 1:]
            s, t = verify(trial)
            tries.append((-s, cs[j].nbytes - cur.nbytes, trial, s, t))
        if not tries:
            break
        _, _, pick, score, tensors = min(tries, key=lambda r: (r[0], r[1]))
        history.append({"repair": True, "drop": sens.reference - score})
    return pick, score, tensors


def _descend(best: tuple[list[int], float, dict[str, np.ndarray]], sens: Sensitivity,
             names: list[str], verify: Any, max_drop: float, history: list[dict[str, Any]],
             steps: int) -> tuple[list[int], float, dict[str, np.ndarray]]:
    """Greedy refinement on real evaluations: from a feasible pick, try for each layer its
    next cheaper candidates (by measured drop, at most 3 per layer), keep the feasible try
    saving the most bytes, repeat (at most ``steps`` times)."""
    pick, score, tensors = best
    tried: set[tuple[int, ...]] = set()
    for _ in range(steps):
        found = None
        for i, n in enumerate(names):
            cs, ds = sens.candidates[n], sens.drops[n]
            cheaper = sorted((j for j, c in enumerate(cs) if c.nbytes < cs[pick[i]].nbytes),
                             key=lambda j: (max(ds[j], 0.0), cs[j].nbytes))[:3]
            for j in cheaper:
                trial = pick[:i] + [j] + pick[i + 1:]
                if tuple(trial) in tried:
                    continue
                tried.add(tuple(trial))
                s, t = verify(trial)
                saved = cs[pick[i]].nbytes - cs[j].nbytes
                if sens.reference - s <= max_drop + 1e-12 and \
                        (found is None or saved > found[0]):
                    found = (saved, trial, s, t)
                    break  # the cheapest-drop candidate of this layer that fits
        if found is None:
            break
        _, pick, score, tensors = found
        history.append({"refine": True, "drop": sens.reference - score,
                        "bytes": sum(sens.candidates[n][j].nbytes
                                     for n, j in zip(names, pick, strict=True))})
    return pick, score, tensors


def uniform_best(sens: Sensitivity, max_drop: float,
                 settings: Sequence[Setting] | None = None) -> tuple[Setting, int, float] | None:
    """The best *uniform* choice: one setting for every layer (from ``settings``, default the
    prune x levels grid), the one with the fewest bytes whose real drop is within
    ``max_drop``. Returns (setting, bytes, score), None when none is. One evaluation per
    setting."""
    ev = sens.evaluator
    grid = list(settings) if settings is not None else menu((1, 1), errors=(), ranks=False)
    rows = []
    for s in grid:
        cands = []
        for layer in sens.layers:
            found = [c for c in sens.candidates[layer.name] if c.setting == s]
            cands.append(found[0] if found else realize(layer.matrix, s))
        size = sum(c.nbytes for c in cands)
        rows.append((size, s, cands))
    best = None
    for size, s, cands in sorted(rows, key=lambda r: r[0]):
        score = ev({layer.name: layer.tensor(c.matrix)
                    for layer, c in zip(sens.layers, cands, strict=True)}, f"all: {s.label}")
        if sens.reference - score <= max_drop + 1e-12:
            best = (s, int(size), score)
            break
    return best
