"""The one table of status codes the validating and decoding kernels return, and the one
helper that turns a code into a :class:`FormatError` naming the format, the block and what is
wrong.

Conventions, the same in every kernel:

- A *status* is an integer: ``OK`` (0) when every rule holds, else one of the positive codes
  below. A kernel that walks blocks returns ``(first failing block or -1, its status)``.
- A *block index* of -1 means "no block failed" (``coding.huffman.first_bad``); it is never a
  status.

Codes are module constants, so numba compiles them in as literals.
"""

from __future__ import annotations

from .errors import FormatError

OK = 0

# pointers and indices: CSC, CSR, COO, the positions of sham and the exceptions of grid
BAD_FIRST = 1
NOT_MONOTONE = 2
BAD_LAST = 3
OUT_OF_RANGE = 4
NOT_SORTED = 5

# the groups of CER and CSER
BAD_ROW_PTR = 11
TOO_MANY_GROUPS = 12
BAD_OMEGA_PTR = 13
LAST_GROUP_EMPTY = 14
EMPTY_GROUP = 15
BAD_OMEGA_INDEX = 16
BAD_COL_INDEX = 17
REPEATED_INDEX = 18
NOT_BY_FREQUENCY = 19
UNUSED_VALUE = 20

# entropy-coded streams (ham, sham, sham_gap, sham_ans, pq)
CORRUPT = 31
ROW_OUT_OF_RANGE = 32

# grid
EXCEPTION_CODE = 41

MESSAGES = {
    BAD_FIRST: "the first pointer is not 0",
    NOT_MONOTONE: "pointers decrease",
    BAD_LAST: "the last pointer does not equal the number of stored entries",
    OUT_OF_RANGE: "an index is out of range",
    NOT_SORTED: "indices are not strictly increasing",
    BAD_ROW_PTR: "row_ptr does not start at 0, decreases, or does not end at the group count",
    TOO_MANY_GROUPS: "a row has more groups than there are explicit values",
    BAD_OMEGA_PTR: "omega_ptr does not start at 0, decreases, or does not end at the entry "
                   "count",
    LAST_GROUP_EMPTY: "a row's last group is empty (CER stops at the last value a row holds)",
    EMPTY_GROUP: "an empty group (CSER stores non-empty groups only)",
    BAD_OMEGA_INDEX: "omega_index out of range or not increasing within a row",
    BAD_COL_INDEX: "a col_index is out of range or not increasing within its group",
    REPEATED_INDEX: "an input index appears twice in one row",
    NOT_BY_FREQUENCY: "the values are not ordered by falling frequency (the implicit one most "
                      "frequent)",
    UNUSED_VALUE: "a stored value never occurs",
    CORRUPT: "the stream is corrupt",
    ROW_OUT_OF_RANGE: "its positions run past the last row",
    EXCEPTION_CODE: "an exception's code is not its column's zero code",
}


def error(fmt: str, status: int, block: int = -1, part: str = "") -> FormatError:
    """The :class:`FormatError` of a failed check: ``"{fmt}: [{part}: ][block {b}: ]
    {message}"``, e.g. ``sham_gap: gaps: block 3: the stream is corrupt``."""
    where = "".join((f"{part}: " if part else "", f"block {block}: " if block >= 0 else ""))
    what = MESSAGES.get(int(status), f"unknown status {int(status)}")
    return FormatError(f"{fmt}: {where}{what}")


def check(fmt: str, status: int, block: int = -1, part: str = "") -> None:
    """Raise :func:`error` unless ``status`` is OK."""
    if status != OK:
        raise error(fmt, status, block, part)


def check_block(fmt: str, block: int, part: str = "") -> None:
    """Raise ``CORRUPT`` for a decoder's first failing block, if any (``block >= 0``)."""
    if block >= 0:
        raise error(fmt, CORRUPT, block, part)
