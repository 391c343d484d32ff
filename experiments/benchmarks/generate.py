"""Time and peak memory to generate and label balanced instances (default: 10^6 length2, |V|=32).

Peak memory is the process's peak resident set size (ru_maxrss) after the run, so it
includes the interpreter and numpy (``baseline_rss_mb`` is the same reading before the run).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any

import numpy as np

from theory.generators import balanced


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", default="length2")
    p.add_argument("--vertices", type=int, default=32)
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    before = _peak_rss_mb()
    start = time.perf_counter()
    inst = balanced(args.problem, np.random.default_rng(args.seed), args.vertices, args.count)
    took = time.perf_counter() - start
    return {
        "problem": args.problem,
        "vertices": args.vertices,
        "count": len(inst),
        "positive_fraction": float(inst.labels().astype(bool).mean()),
        "seconds": round(took, 3),
        "instances_per_s": round(len(inst) / took),
        "baseline_rss_mb": round(before, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "stored_mb": round(inst.graphs.rows.nbytes / 2**20, 1),
    }
