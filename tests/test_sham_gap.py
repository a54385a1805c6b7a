"""sham_gap: coded row gaps beyond the generic suites: smaller than sHAM when rows are many,
exact against the gap definition, hostile gaps refused."""

import numpy as np
import pytest

import sparsecodec as sc
from sparsecodec.examples import pruned_quantized_layer
from sparsecodec.kernels.gaps import gaps_of


def test_gaps_definition():
    ptr = np.array([0, 2, 2, 5])
    rows = np.array([1, 3, 0, 4, 5])
    assert gaps_of(ptr, rows).tolist() == [2, 2, 1, 4, 1]


def test_smaller_than_sham_at_ten_percent():
    W = pruned_quantized_layer(1024, 512, 0.10, 32)
    gap, sham = sc.encode(W, format="sham_gap"), sc.encode(W, format="sham")
    assert gap.nbytes < 0.75 * sham.nbytes
    assert np.array_equal(gap.decode(), W)
    acc = sc.bounds.account(gap)
    assert acc.bits["indices"] < 0.5 * sc.bounds.account(sham).bits["indices"]
    assert sc.encode(W).format in ("sham_gap", "sham_ans")  # the rANS format may be smaller


def _hostile(edit):
    W = np.zeros((6, 2), np.float32)
    W[[1, 4], 0] = [1.0, 2.0]
    W[[0, 5], 1] = [1.0, 1.0]
    enc = sc.encode(W, format="sham_gap")
    comps = dict(enc.components())
    edit(comps)
    return type(enc).from_components(enc.meta, comps)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.__setitem__("gap_symbols", np.array([9, 1, 2, 3, 4, 5], np.uint32)[
        :c["gap_symbols"].size]), "outside"),
    (lambda c: c.__setitem__("gap_symbols", np.full(c["gap_symbols"].size, 6, np.uint32)),
     "outside|distinct|run past"),
    (lambda c: c.__setitem__("gap_symbols", (c["gap_symbols"] * 0 + np.arange(
        3, 3 + c["gap_symbols"].size)).astype(np.uint32)), "run past|outside"),
])
def test_hostile_gaps(edit, message):
    with pytest.raises(sc.FormatError, match=message):
        _hostile(edit)
