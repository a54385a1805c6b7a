"""``load_nncodec``: NNCodec's ``nnc`` module without torch or torchvision (see
``../shared/notes/baselines.md``). It imports nothing of sparsecodec, so that a benchmark can
run it in the separate environment NNCodec needs (numpy < 2)."""

from __future__ import annotations

import sys
import types


def load_nncodec():
    """``nncodec.nnc``, imported without torch/torchvision, or None if not installed.

    ``nncodec.nnc`` imports ``nncodec.framework`` (model loaders that need torchvision), which
    the numpy-dict ``compress``/``decompress`` path never uses. Three empty modules stand in
    for it.
    """
    try:
        import nncodec  # noqa: F401
    except ImportError:
        return None
    stubs = {"tensorflow_model": {"is_tef_model": lambda _: False},
             "pytorch_model": {"is_pyt_model": lambda _: False},
             "use_case_init": {"use_cases": {}}}
    framework = types.ModuleType("nncodec.framework")
    framework.__path__ = []
    for name, attrs in stubs.items():
        mod = types.ModuleType(f"nncodec.framework.{name}")
        mod.__dict__.update(attrs)
        setattr(framework, name, mod)
        sys.modules[mod.__name__] = mod
    sys.modules["nncodec.framework"] = framework
    from nncodec import nnc

    return nnc
