"""How far real-size pruned and quantized layers compress, against the default decode budget
(``max(256 MiB, 1024 x stored bytes)``, ``docs/container.md``): ``python bench/budget.py``.

For each layer shape, fraction kept and number of values, encodes with ``auto``, ``sham``,
``csc`` and ``ham`` and prints how many encodings decode to more than 1024x their stored bytes,
the largest ratios, and whether the default budget admits every one of them.
"""

from __future__ import annotations

import numpy as np

import sparsecodec as sc
from sparsecodec.examples import pruned_quantized_layer
from sparsecodec.io.tensors import DECODE_RATIO, budget_limit


def main() -> None:
    rows = []
    for n, m in [(384, 384), (384, 1536), (1536, 384), (4096, 4096)]:
        for kept in (0.001, 0.01, 0.1, 0.5, 1.0):
            for k in (2, 16, 256):
                W = pruned_quantized_layer(n, m, kept, k, seed=1)
                for fmt in ("auto", "sham", "csc", "ham"):
                    e = sc.encode(W, format=fmt)
                    admitted = W.nbytes <= budget_limit(e.nbytes, "auto")
                    rows.append((W.nbytes / e.nbytes, n, m, kept, k, e.format, admitted))
    rows.sort(reverse=True)
    over = [r for r in rows if r[0] > DECODE_RATIO]
    print(f"{len(rows)} encodings; {len(over)} decode to more than {DECODE_RATIO}x their stored "
          f"bytes; admitted by the default budget: {sum(r[6] for r in rows)} of {len(rows)}")
    print(f"{'decoded/stored':>15} {'shape':>10} {'kept':>6} {'k':>4} format")
    for r in rows[:10]:
        print(f"{r[0]:>15.1f} {f'{r[1]}x{r[2]}':>10} {r[3]:>6g} {r[4]:>4} {r[5]}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
