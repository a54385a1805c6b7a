"""The one exception hierarchy of sparsecodec.

Every error the library raises on purpose is a :class:`SparseCodecError`. The subclasses also
derive from the matching built-in exception so that ``except ValueError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class SparseCodecError(Exception):
    """Base class of every error raised by sparsecodec."""


class FormatError(SparseCodecError, ValueError):
    """Encoded data (components, meta or a file) is inconsistent, truncated or hostile."""


class EncodeError(SparseCodecError, ValueError):
    """The input cannot be encoded as asked (bad dtype, too many distinct values, bad option)."""


class ShapeError(SparseCodecError, ValueError):
    """An array has the wrong number of dimensions or the wrong length."""


class DTypeError(SparseCodecError, TypeError):
    """An operand has a dtype the operation does not accept (complex, object, ...)."""


class QuantizeError(SparseCodecError, ValueError):
    """A pruner or quantizer got arguments it cannot honour (k < 1, p outside [0, 100], NaN
    weights, more levels asked than the weights have distinct values, ...)."""


class OptionError(SparseCodecError, ValueError):
    """An option or argument outside what it accepts: an unknown name (an order, a layout, a
    dictionary, an activation) or a value out of range (``block_symbols=0``)."""


class UnknownFormatError(OptionError, FormatError):
    """No registered format has this name. Raised for an argument (``encode(W, "nope")``) and
    for a file naming a format this version does not know, so it is both an
    :class:`OptionError` and a :class:`FormatError`."""


class PackError(SparseCodecError):
    """A tensor failed to pack; the message names it. No output file was written."""


class EvaluationError(SparseCodecError):
    """A user's evaluation function (``sparsecodec.tune``) is missing, cannot be imported,
    raised, or returned something that is not a finite number. The message says which."""


__all__ = ["DTypeError", "EncodeError", "EvaluationError", "FormatError", "OptionError",
           "PackError", "QuantizeError", "ShapeError", "SparseCodecError", "UnknownFormatError",
           "converted"]


@contextmanager
def converted(what: str, kinds: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Turn what a foreign reader (h5py, zipfile, numpy's .npy header parser) raises on damaged
    input, any of ``kinds``, into one :class:`FormatError`: ``"{what} (Type: message)"``. Our
    own errors pass through unchanged."""
    try:
        yield
    except SparseCodecError:
        raise
    except kinds as exc:
        raise FormatError(f"{what} ({type(exc).__name__}: {str(exc)[:200]})") from None
