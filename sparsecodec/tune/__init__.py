"""Whole-model tuning: how far each layer can be pruned and quantized, found from a little
data or an evaluation function, without retraining (see ``docs/tuning.md``).

- :func:`sensitivity` and :func:`allocate`: per-layer settings for a file-size target or a
  score drop, from measured rate-distortion points of every layer;
- :func:`gptq` and :func:`sparsegpt`: calibration-aware quantization and pruning (the output
  error on a layer's inputs, not the weight error);
- :func:`lowrank` / :class:`LowRank`: ``W ~ S + U V`` with encoded factors, computed as
  ``(x U) V``;
- :func:`bin_and_quant`: the sensitivity-driven binning of Sakthi et al.;
- :class:`Evaluator`: the user's evaluation function, cached and counted.
"""

from .allocate import (
    Allocation,
    Candidate,
    Sensitivity,
    Setting,
    allocate,
    menu,
    realize,
    sensitivity,
    uniform_best,
)
from .binquant import BinQuant, bin_and_quant
from .calibrated import gptq, hessian, sparsegpt
from .capture import layer_hessians
from .evaluation import Evaluator, load_function
from .lowrank import LowRank, lowrank

__all__ = ["Allocation", "BinQuant", "Candidate", "Evaluator", "LowRank", "Sensitivity",
           "Setting", "allocate", "bin_and_quant", "gptq", "hessian", "layer_hessians",
           "load_function", "lowrank", "menu", "realize", "sensitivity", "sparsegpt",
           "uniform_best"]
