import numpy as np
import pytest

import sparsecodec as sc

FORMATS = sc.formats()


@pytest.mark.parametrize("bad, exc, msg", [
    (np.zeros(5, np.float32), sc.ShapeError, "2-D"),
    (np.zeros((2, 2, 2), np.float32), sc.ShapeError, "3 dimension"),
    (np.zeros((2, 2), np.complex64), sc.EncodeError, "complex64"),
    (np.zeros((2, 2), object), sc.EncodeError, "object"),
    (np.zeros((2, 2), np.int32), sc.EncodeError, "int32"),
])
def test_bad_matrices(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        sc.encode(bad, format="sham")


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_operands(fmt):
    enc = sc.encode(np.eye(4, dtype=np.float32), format=fmt)
    with pytest.raises(sc.ShapeError, match="4 rows"):
        enc.rmatvec(np.ones(5))
    with pytest.raises(sc.ShapeError, match=r"\(n,\)"):
        enc.rmatvec(np.ones((2, 4)))
    with pytest.raises(sc.ShapeError):
        enc.rmatmul(np.ones((2, 3)))
    with pytest.raises(sc.DTypeError, match="complex"):
        enc.rmatvec(np.ones(4, np.complex128))
    with pytest.raises(sc.DTypeError):
        np.array(["a"] * 4, dtype=object) @ enc
    with pytest.raises(sc.ShapeError):
        enc.decode_columns(3, 2)


def test_index_map_width_too_small():
    W = np.arange(16, dtype=np.float32).reshape(4, 4)
    with pytest.raises(sc.EncodeError, match="16 distinct values need 4 bits"):
        sc.encode(W, format="index_map", bits=3)
    assert sc.encode(W, format="index_map", bits=7).width == 7


def test_unknown_format_and_options():
    W = np.eye(3, dtype=np.float32)
    with pytest.raises(sc.UnknownFormatError, match="unknown format 'zip'"):
        sc.encode(W, format="zip")
    with pytest.raises(sc.OptionError, match="csr: unknown option"):
        sc.encode(W, format="csr", bits=3)
    with pytest.raises(sc.OptionError, match="auto: unknown option"):
        sc.encode(W, colour="red")
    with pytest.raises(sc.OptionError, match="ham: max_code_length"):
        sc.encode(W, format="ham", max_code_length=30)


@pytest.mark.parametrize("fmt", ["ham", "sham", "sham_gap", "sham_ans", "pq"])
def test_coder_option_errors_name_the_format_called(fmt):
    """The blocked-stream helpers are shared, but each message names the format asked for."""
    W = np.eye(8, dtype=np.float32)
    for opts in ({"block_symbols": 0}, {"block_symbols": True}):
        with pytest.raises(sc.OptionError, match=f"^{fmt}: block_symbols must be"):
            sc.encode(W, format=fmt, **opts)


def test_errors_are_one_hierarchy():
    """errors.py's promise: every error is a SparseCodecError, and each also derives from the
    matching built-in, so that ``except ValueError`` / ``except TypeError`` keep working."""
    bases = {sc.FormatError: ValueError, sc.EncodeError: ValueError, sc.ShapeError: ValueError,
             sc.QuantizeError: ValueError, sc.DTypeError: TypeError, sc.OptionError: ValueError,
             sc.UnknownFormatError: ValueError, sc.PackError: sc.SparseCodecError,
             sc.EvaluationError: sc.SparseCodecError}
    for e, builtin in bases.items():
        assert issubclass(e, sc.SparseCodecError) and issubclass(e, builtin), e
    assert not issubclass(sc.DTypeError, ValueError)
    import inspect

    from sparsecodec import errors
    defined = {c for _, c in inspect.getmembers(errors, inspect.isclass)
               if c.__module__ == errors.__name__}
    assert defined == {sc.SparseCodecError, *bases}  # a new error class needs a line above
    assert {getattr(errors, n) for n in errors.__all__ if n != "converted"} == defined
    # an unknown format is a bad argument to encode() and a bad file to load()
    assert issubclass(sc.UnknownFormatError, sc.OptionError)
    assert issubclass(sc.UnknownFormatError, sc.FormatError)
    with pytest.raises(ValueError):  # raised for real, caught as the built-in
        sc.quantize.kmeans(np.ones(4), 0)
    with pytest.raises(TypeError):
        sc.encode(np.eye(2, dtype=np.float32)).rmatvec(np.ones(2, np.complex64))
