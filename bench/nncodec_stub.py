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


def in_nncodec_env(python: str, script: str, arrays: dict) -> dict:
    """Run ``script --nncodec-child IN.npz OUT.json`` with NNCodec's Python (it needs numpy < 2,
    so it lives in its own environment): the arrays go in as an .npz, keyed by name with
    spaces made underscores, and the JSON it writes comes back under the same names."""
    import json
    import subprocess
    import tempfile
    from pathlib import Path

    import numpy as np

    key = {name: name.replace(" ", "_") for name in arrays}
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / "in.npz", **{key[k]: v for k, v in arrays.items()})
        subprocess.run([python, script, "--nncodec-child", str(Path(d) / "in.npz"),
                        str(Path(d) / "out.json")], check=True)
        got = json.loads((Path(d) / "out.json").read_text())
    return {name: got[key[name]] for name in arrays}


def parse_args(ap, child):
    """Add the options of a script that talks to NNCodec through :func:`in_nncodec_env`
    (``--nncodec-python``, and the hidden ``--nncodec-child IN OUT`` that function runs it
    with), parse them, and when the script runs as the child, run ``child(IN, OUT)`` and
    return None; else the parsed arguments."""
    import argparse

    ap.add_argument("--nncodec-python", help="a Python with nncodec installed")
    ap.add_argument("--nncodec-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.nncodec_child:
        child(*args.nncodec_child)
        return None
    return args
