"""The user's evaluation function, called on a model with some tensors replaced: scores are
cached by the content of the replaced tensors, every real call is counted and shown on a
progress bar, and every way it can fail becomes one :class:`EvaluationError`.

An evaluation function maps a dict of arrays (the model's tensors, by name, in the layout the
user gave them) to a score, higher is better (an accuracy in points, a negative loss, a
cosine similarity). It is the cost of every tuning algorithm here: each says how many calls
it made (``Evaluator.calls``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import EvaluationError
from ..progress import end_line, progress


def digest(a: np.ndarray) -> bytes:
    """A 16-byte content key of an array (dtype, shape and bytes)."""
    a = np.ascontiguousarray(a)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    return h.digest()


def load_function(spec: str) -> Callable[[dict[str, np.ndarray]], Any]:
    """``"module:function"`` (or ``"path/to/file.py:function"``) -> the function, for the CLI's
    ``--eval``. Raises :class:`EvaluationError` saying what is missing."""
    module, sep, name = spec.rpartition(":")
    if not sep or not module or not name:
        raise EvaluationError(f"--eval {spec!r}: give MODULE:FUNCTION (or FILE.py:FUNCTION)")
    try:
        if module.endswith(".py"):
            loader = importlib.util.spec_from_file_location("sparsecodec_user_eval", module)
            if loader is None or loader.loader is None:
                raise ImportError(f"cannot load {module}")
            mod = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(mod)
        else:
            mod = importlib.import_module(module)
    except Exception as exc:  # the user's module: anything can go wrong in it
        raise EvaluationError(f"--eval {spec!r}: cannot import {module!r} "
                              f"({type(exc).__name__}: {exc})") from exc
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise EvaluationError(f"--eval {spec!r}: {module!r} has no function {name!r}")
    return fn  # type: ignore[no-any-return]


class Evaluator:
    """Scores of ``evaluate`` on ``base`` with some tensors replaced, cached.

    ``evaluator(replaced)`` calls ``evaluate({**base, **replaced})`` once per distinct content
    of ``replaced`` (an empty dict scores the base model); ``calls`` counts the real calls,
    ``hits`` the cached answers. ``show`` draws a progress line per call on stderr."""

    def __init__(self, evaluate: Callable[[dict[str, np.ndarray]], Any],
                 base: Mapping[str, np.ndarray], show: bool = False, total: int | None = None):
        if not callable(evaluate):
            raise EvaluationError(f"the evaluation function must be callable, got "
                                  f"{type(evaluate).__name__}")
        self.evaluate = evaluate
        self.base = dict(base)
        self.cache: dict[bytes, float] = {}
        self.calls = 0
        self.hits = 0
        self.show = show
        self.total = total
        self._reference: float | None = None

    def key(self, replaced: Mapping[str, np.ndarray]) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        for name in sorted(replaced):
            if name not in self.base:
                raise EvaluationError(f"tensor {name!r} is not in the model")
            h.update(name.encode() + b"\0" + digest(replaced[name]))
        return h.digest()

    def __call__(self, replaced: Mapping[str, np.ndarray] | None = None,
                 what: str = "") -> float:
        replaced = replaced or {}
        k = self.key(replaced)
        if k in self.cache:
            self.hits += 1
            return self.cache[k]
        if self.show:
            progress(self.calls, max(self.total or 0, self.calls + 1), f"evaluate {what}"[:40])
        try:
            value = self.evaluate({**self.base, **replaced})
        except Exception as exc:  # the user's function: report it with what was evaluated
            end_line()
            raise EvaluationError(f"the evaluation function raised {type(exc).__name__}: "
                                  f"{exc} (evaluating {what or 'the model'})") from exc
        try:
            score = float(value)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            end_line()
            raise EvaluationError(f"the evaluation function must return a finite number, "
                                  f"returned {value!r} (evaluating {what or 'the model'})")
        self.calls += 1
        self.cache[k] = score
        return score

    @property
    def reference(self) -> float:
        """The score of the unmodified model (evaluated once)."""
        if self._reference is None:
            self._reference = self({}, "the original model")
        return self._reference

    def done(self) -> None:
        if self.show:
            progress(self.calls, self.calls, f"{self.calls} evaluations")
