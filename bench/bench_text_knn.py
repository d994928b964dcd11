"""text-knn's similarity on a large catalogue: each item's k nearest, found a column block at a time.

    nice .venv/bin/python bench/bench_text_knn.py [--items 50000 100000] [--k 100] [--dim 384] [--threads 2]

Above ``DENSE_MAX_ITEMS`` (20,000) target items ``text-knn`` keeps its item-item similarity
sparse (``controls.nearest_columns``): the dense matrix would need items² x 4 bytes (10^5 items:
37 GiB). The vectors here are random unit vectors of the encoder's width (the cost does not
depend on the text); encoding the texts themselves is ``bench_encoder.py``'s figure. Prints the
wall time, the kept entries and the process's peak RSS for each size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from xdplug_builtin.baselines.controls import nearest_columns  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, nargs="+", default=[50_000, 100_000])
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for n in args.items:
        x = torch.nn.functional.normalize(torch.randn(n, args.dim, generator=torch.Generator().manual_seed(0)), dim=1)
        start = time.perf_counter()
        sim = nearest_columns(x, args.k)
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
        print(f"{n:,} items, k {args.k}, dim {args.dim}, {args.threads} threads: {wall:.1f} s, "
              f"{sim.nnz:,} entries kept, peak RSS so far {peak:.2f} GiB "
              f"(dense would be {n * n * 4 / 2**30:.1f} GiB)", flush=True)


if __name__ == "__main__":
    main()
