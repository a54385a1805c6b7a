"""Pruning and scalar quantization of float weights, framework-free (NumPy in, NumPy out).

>>> import numpy as np
>>> from sparsecodec import quantize as qz
>>> W = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
>>> P = qz.prune(W, 90)                      # keep the 10% largest |w|
>>> q = qz.kmeans(P.weights, 8)              # share 8 values among the survivors
>>> q.k <= 8, bool((q.values[~P.mask] == 0).all())
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import QuantizeError
from .dependent import dependent
from .ecsq import ecsq, ecsq_lambda
from .integer import integer
from .kmeans import centroid_gradients, gwk, kmeans, optimal_kmeans
from .probabilistic import probabilistic
from .product import conv_to_matrix, matrix_to_conv, product_quantize
from .prune import Pruned, global_prune, nm_prune, prune
from .result import Quantized
from .uniform import uniform

METHODS: dict[str, Callable[..., Quantized]] = {
    "uniform": uniform,
    "kmeans": kmeans,
    "optimal": optimal_kmeans,
    "gwk": gwk,
    "probabilistic": probabilistic,
    "ecsq": ecsq,
}


def quantize(W: Any, method: str, k: int, **options: Any) -> Quantized:
    """Quantize with the named method (one of :data:`METHODS`) to at most ``k`` levels; the
    options are the method's own (e.g. ``importance=`` for ``"gwk"``, ``lam=`` or
    ``entropy=`` for ``"ecsq"``)."""
    if method not in METHODS:
        raise QuantizeError(f"unknown quantizer {method!r}; known: {', '.join(METHODS)}")
    if method == "ecsq" and "lam" not in options and not (
            {"entropy", "levels", "mse"} & options.keys()):
        options["lam"] = 0.0
    return METHODS[method](W, k, **options)


__all__ = [
    "METHODS",
    "Pruned",
    "Quantized",
    "centroid_gradients",
    "conv_to_matrix",
    "dependent",
    "ecsq",
    "ecsq_lambda",
    "global_prune",
    "gwk",
    "integer",
    "kmeans",
    "matrix_to_conv",
    "nm_prune",
    "optimal_kmeans",
    "probabilistic",
    "product_quantize",
    "prune",
    "quantize",
    "uniform",
]
