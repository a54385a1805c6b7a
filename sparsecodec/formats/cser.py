"""``cser``: Compressed Shared Elements Row (Wiedemann et al., IEEE TNNLS 2020).

CER without the empty groups: each row lists only the values it holds, and an extra
component ``omega_index`` (packed at ceil(log2 k) bits) gives each group's index into
``omega``. Smaller than CER when rows hold few of the values, or values in no frequency order.
Everything else as :mod:`sparsecodec.formats.cer`.
"""

from __future__ import annotations

from .base import register
from .cer import CER


@register
class CSER(CER):
    format = "cser"
    padded = False
