"""Batched exact solvers against networkx on the same instances, in one run.

The networkx side is timed on graphs already built (``to_networkx`` is not counted), so the
ratio compares solver with solver: ``common_neighbors``, ``has_path`` and ``shortest_path``
(which, like ours, returns a path). ``agree`` is the fraction of identical answers; for
shortest_path, of our paths that are valid paths as short as networkx's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
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
    p.add_argument("--repeats", type=int, default=3, help="each side is timed best-of-this-many")


def _best_time(fn: Callable[..., Any], args: tuple[Any, ...], repeats: int) -> tuple[float, Any]:
    """Best wall time of ``fn(*args)`` over ``repeats`` calls, and its result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def _networkx_all(fn: Callable[..., Any], queries: list[tuple[Any, int, int]]) -> list[Any]:
    return [fn(g, a, b) for g, a, b in queries]


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    report: dict[str, Any] = {"vertices": args.vertices, "instances": args.instances}
    for problem in PROBLEMS:
        inst = sample(problem, "balanced", rng, args.vertices, args.instances)
        graphs, s, t = inst.graphs, inst.s, inst.t
        ours_s, ours = _best_time(solve, (problem, graphs, s, t), args.repeats)
        nx_graphs = reference.to_networkx(graphs)
        fn = {
            "length2": reference.length2_path,
            "connectivity": reference.connectivity,
            "shortest_path": reference.shortest_path,
        }[problem]
        queries = list(zip(nx_graphs, s.tolist(), t.tolist(), strict=True))
        nx_s, theirs = _best_time(_networkx_all, (fn, queries), args.repeats)
        if problem == "shortest_path":  # equal distances, and ours is a valid shortest path
            same = np.array(
                [
                    is_shortest_path(graphs, b, ours.path(b), int(s[b]), int(t[b]), len(p) - 1)
                    for b, p in enumerate(theirs)
                ]
            )
        else:
            same = ours == np.array(theirs)
        report[problem] = {
            "batched_s": round(ours_s, 5),
            "networkx_s": round(nx_s, 5),
            "speedup_vs_networkx": round(nx_s / ours_s, 1),
            "agree": float(same.mean()),
        }
    return report
