"""One table of kernel status codes: distinct, OK = 0 and every failure positive with a
message; one helper turns a code into the FormatError that names the format and block; and no
kernel module keeps codes of its own."""

import pathlib
import re

import numpy as np
import pytest

import sparsecodec as sc
from sparsecodec import status

CODES = {name: v for name, v in vars(status).items() if name.isupper() and isinstance(v, int)}


def test_codes_are_one_table():
    assert status.OK == 0
    assert len(set(CODES.values())) == len(CODES)
    failures = {v for name, v in CODES.items() if name != "OK"}
    assert min(failures) > 0 and failures == set(status.MESSAGES)


def test_no_kernel_module_defines_its_own_codes():
    root = pathlib.Path(status.__file__).parent
    own = re.compile(r"^(OK|CORRUPT|ROW_OUT_OF_RANGE|MESSAGES|[A-Z_]*(BAD|NOT)[A-Z_]*) = ",
                     re.M)
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "status.py" and own.search(p.read_text())]
    assert offenders == []


def test_error_names_format_part_and_block():
    e = status.error("sham_gap", status.ROW_OUT_OF_RANGE, 3, part="gaps")
    assert isinstance(e, sc.FormatError)
    assert str(e) == "sham_gap: gaps: block 3: its positions run past the last row"
    assert str(status.error("csc", status.NOT_SORTED)) == \
        "csc: indices are not strictly increasing"
    status.check("csc", status.OK)
    status.check_block("ham", -1)
    with pytest.raises(sc.FormatError, match="^ham: block 0: the stream is corrupt$"):
        status.check_block("ham", 0)


def test_a_corrupt_block_is_reported_by_format_and_block():
    W = np.zeros((64, 64), np.float32)
    W[::3, ::2] = np.tile([1.0, 2.0, 3.0, 5.0], 352)[:W[::3, ::2].size].reshape(22, 32)
    enc = sc.encode(W, format="ham", block_symbols=1024)
    comps = enc.components()
    comps["stream"] = comps["stream"].copy()
    comps["stream"][-1] ^= np.uint64(0xFFFF)  # the last block's lanes no longer end in place
    broken = type(enc).from_components(enc.meta, comps)
    with pytest.raises(sc.FormatError, match=r"^ham: block \d+: the stream is corrupt$"):
        broken.decode()
