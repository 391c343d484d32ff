"""Batched exact solvers against networkx on the same instances, in one run.

The networkx side is timed on graphs already built (``to_networkx`` is not counted), so the
ratio compares solver with solver. ``agree`` is the fraction of identical answers (distances
for shortest_path, whose paths are also checked to be shortest paths).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from theory import reference
from theory.generators import sample
from theory.problems import PROBLEMS, solve
from theory.solvers import is_shortest_path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vertices", type=int, default=32)
    p.add_argument("--instances", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3, help="best-of repeats of the fast solver")


def _best_time(fn, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    report: dict[str, Any] = {"vertices": args.vertices, "instances": args.instances}
    for problem in PROBLEMS:
        inst = sample(problem, "balanced", rng, args.vertices, args.instances)
        graphs, s, t = inst.graphs, inst.s, inst.t
        ours_s, ours = _best_time(lambda: solve(problem, graphs, s, t), args.repeats)
        nx_graphs = reference.to_networkx(graphs)
        fn = {"length2": reference.length2_path, "connectivity": reference.connectivity,
              "shortest_path": reference.distance}[problem]
        start = time.perf_counter()
        theirs = np.array([fn(g, int(a), int(b)) for g, a, b in zip(nx_graphs, s, t, strict=True)])
        nx_s = time.perf_counter() - start
        if problem == "shortest_path":
            same = ours.distance == theirs
            same &= np.array([
                is_shortest_path(graphs, b, ours.path(b), int(s[b]), int(t[b]), int(theirs[b]))
                for b in range(len(inst))
            ])
        else:
            same = ours == theirs
        report[problem] = {
            "batched_s": round(ours_s, 5),
            "networkx_s": round(nx_s, 5),
            "speedup_vs_networkx": round(nx_s / ours_s, 1),
            "agree": float(same.mean()),
        }
    return report
