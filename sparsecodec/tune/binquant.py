"""Bin & Quant (Sakthi, Yadla, Pawate, "Deep learning model compression using network
sensitivity and gradients", 2022): quantization without retraining, driven by the network's
sensitivity to each range of weight values.

Per layer, in order:

1. bins with edges ``[min, mu - sigma, mu, mu + sigma, max]`` of the layer's weights (edges
   outside ``[min, max]`` dropped);
2. every weight becomes its bin's centre (``center="midpoint"``: the middle of the bin's
   edges, as the paper; ``"mean"``: the mean of the bin's weights, our variant: the least
   squared error for the same bins);
3. the model is evaluated with the layers done so far quantized (later layers float); if the
   score is within ``tol`` of the float model's, the layer is done;
4. otherwise each bin's sensitivity is probed: the layer's *original* weights in that bin
   are scaled by ``1 + probe`` (+20%), the rest of the layer left float, and the score drop
   measured; the most sensitive bin is split (``split="midpoint"``: at the middle of its
   edges, as the paper; ``"median"``: at the median of its weights, our variant) and the
   loop returns to 2 (at most ``max_bins`` bins).

Choices the paper leaves open, made here: zeros of the layer (pruned weights) stay zero and
are not binned; a bin is closed on the left except the first (``np.digitize`` with the
inner edges); probes of bins unchanged since the last split are cached, not re-evaluated;
ties between equally sensitive bins go to the widest. The quantized layer is stored
losslessly by any format (``auto``: its smallest), which entropy-codes the bin indices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import OptionError
from .allocate import Layout, Setting, layers_of, realize, stored_cost
from .evaluation import Evaluator

CENTERS = ("midpoint", "mean")
SPLITS = ("midpoint", "median")


@dataclass
class BinQuantLayer:
    name: str
    edges: np.ndarray   # bin edges, ascending (bins = len(edges) - 1)
    values: np.ndarray  # the quantized matrix (inputs, outputs)
    score: float        # the model's score once this layer was done
    nbytes: int         # bytes the layer adds to the file (auto format)
    format: str
    evaluations: int    # evaluations this layer used

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.nbytes / self.values.size


@dataclass
class BinQuant:
    layers: list[BinQuantLayer]
    tensors: dict[str, np.ndarray]  # the model's tensors with the quantized layers
    reference: float
    score: float
    evaluations: int

    @property
    def bits_per_weight(self) -> float:
        n = sum(layer.values.size for layer in self.layers)
        return 8 * sum(layer.nbytes for layer in self.layers) / n


def _quantize(w: np.ndarray, edges: np.ndarray, center: str) -> np.ndarray:
    idx = np.digitize(w, edges[1:-1])
    if center == "midpoint":
        centres = (edges[:-1] + edges[1:]) / 2
    else:
        sums = np.bincount(idx, weights=w, minlength=len(edges) - 1)
        counts = np.bincount(idx, minlength=len(edges) - 1)
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), (edges[:-1] + edges[1:]) / 2)
    return centres[idx]


def bin_and_quant(weights: Mapping[str, np.ndarray], evaluate: Callable[[dict], Any], *,
                  layers: Sequence[str] | None = None, layout: str | Layout = "as-is",
                  tol: float = 0.2, probe: float = 0.2, max_bins: int = 256,
                  center: str = "midpoint", split: str = "midpoint", show: bool = False,
                  evaluator: Evaluator | None = None) -> BinQuant:
    """Run Bin & Quant (see the module docstring) on ``layers`` (default: every float tensor
    of 2+ dimensions) of the model ``weights`` scored by ``evaluate`` (higher is better).
    ``tol``: the score drop allowed per layer, in the score's units (0.2 points by default).
    Deterministic."""
    if center not in CENTERS or split not in SPLITS:
        raise OptionError(f"center must be one of {CENTERS} and split one of {SPLITS}")
    if not (tol >= 0 and probe > 0 and isinstance(max_bins, int) and max_bins >= 2):
        raise OptionError("need tol >= 0, probe > 0 and an integer max_bins >= 2")
    L = layers_of(weights, layers, layout)
    ev = evaluator or Evaluator(evaluate, weights, show)
    ref = ev.reference
    done: dict[str, np.ndarray] = {}
    out = []
    for layer in L:
        before = ev.calls
        W = layer.matrix.astype(np.float64)
        nz = W != 0
        w = W[nz]
        if w.size == 0:
            continue
        lo, hi = float(w.min()), float(w.max())
        mu, sd = float(w.mean()), float(w.std())
        edges = np.unique(np.clip([lo, mu - sd, mu, mu + sd, hi], lo, hi))
        if edges.size < 2:
            edges = np.array([lo, hi + (abs(hi) or 1.0)])
        while True:
            Q = np.zeros_like(W)
            Q[nz] = _quantize(w, edges, center)
            Qt = layer.tensor(Q.astype(layer.matrix.dtype))
            score = ev({**done, layer.name: Qt}, f"{layer.name}: {edges.size - 1} bins")
            if ref - score <= tol or edges.size - 1 >= max_bins:
                break
            idx = np.digitize(w, edges[1:-1])
            drops = []
            for b in range(edges.size - 1):
                P = W.copy()
                sel = np.zeros_like(nz)
                sel[nz] = idx == b
                P[sel] *= 1 + probe
                s = ev({**done, layer.name: layer.tensor(P.astype(layer.matrix.dtype))},
                       f"{layer.name}: probe bin {b}")
                drops.append((abs(ref - s), edges[b + 1] - edges[b], b))
            _, width, b = max(drops)
            if width <= 0:
                break
            members = w[idx == b]
            cut = (edges[b] + edges[b + 1]) / 2 if split == "midpoint" or members.size < 2 \
                else float(np.median(members))
            if not edges[b] < cut < edges[b + 1]:
                cut = (edges[b] + edges[b + 1]) / 2
            edges = np.insert(edges, b + 1, cut)
        done[layer.name] = Qt
        Qm = Q.astype(layer.matrix.dtype)
        cand = realize(Qm, Setting(0.0, None))  # stored as it is, by the auto format
        out.append(BinQuantLayer(layer.name, edges, Qm, score, stored_cost(cand.stored),
                                 cand.stored.format, ev.calls - before))
    ev.done()
    final = ev(done, "the quantized model")
    return BinQuant(out, {**dict(weights), **done}, ref, final, ev.calls)

