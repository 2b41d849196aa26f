"""Single-core memory bandwidth, to name beside every timing: decode is bound by reading weights.

Reads (a sum over) and copies a buffer much larger than the caches, on one
thread, several times, and prints the best rate of each in GB/s (1e9 bytes).
Run: ``python bench/membw.py [--mb 512] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def measure(mb: int = 512, repeats: int = 5) -> dict:
    n = mb * (1 << 20) // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    read, copy = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        src.sum()
        read.append(src.nbytes / (time.perf_counter() - t0) / 1e9)
        t0 = time.perf_counter()
        np.copyto(dst, src)
        copy.append(2 * src.nbytes / (time.perf_counter() - t0) / 1e9)  # read + write
    return {"read_gb_s": max(read), "copy_gb_s": max(copy), "buffer_mb": mb,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    r = measure(args.mb, args.repeats)
    print(f"{r['machine']}: single-core read {r['read_gb_s']:.1f} GB/s, copy {r['copy_gb_s']:.1f} GB/s "
          f"(best of {args.repeats}, {r['buffer_mb']} MB buffer)")


if __name__ == "__main__":
    main()
