"""PyTorch models on compressed weights (the optional ``torch`` extra, CPU).

>>> import torch, sparsecodec.torch as sct                      # doctest: +SKIP
>>> sct.prune_retrain(model, 90, loss_fn, batches, epochs=10)    # doctest: +SKIP
>>> sct.compress(model, quantize="kmeans:32")                    # doctest: +SKIP
>>> sct.finetune(model, torch.nn.functional.cross_entropy, batches, epochs=3)  # doctest: +SKIP
>>> sct.save_compressed(model, "model.spc")                      # doctest: +SKIP
>>> sct.load_compressed(skeleton, "model.spc")                   # doctest: +SKIP

``compress`` swaps every ``nn.Linear`` and ``nn.Conv2d`` for a module that holds the encoded
matrix and computes with this library's kernels; the rest of the model (norms, embeddings,
attention's softmax) runs in torch unchanged. See ``docs/frameworks.md``.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("sparsecodec.torch needs PyTorch: pip install 'sparsecodec[torch]'") \
        from exc

from .modules import (
    CompressedConv2d,
    CompressedLinear,
    compress,
    compressed_modules,
    gradient_importance,
    load_compressed,
    save_compressed,
    weight_bytes,
)
from .training import SharedWeight, distillation_loss, finetune, prune_retrain

__all__ = ["CompressedConv2d", "CompressedLinear", "SharedWeight", "compress",
           "compressed_modules", "distillation_loss", "finetune", "gradient_importance",
           "load_compressed", "prune_retrain", "save_compressed", "weight_bytes"]
