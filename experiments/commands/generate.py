"""``parrots generate``: labelled instances as JSON lines."""

from __future__ import annotations

import argparse

import numpy as np

from theory import jsonl
from theory.errors import InputError
from theory.generators import FAMILIES, sample
from theory.problems import PROBLEMS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample instances and label them with the exact solver",
        description="Sample instances of PROBLEM, answer them with the exact batched solver, "
        "and write one JSON object per line (written to a temporary file, renamed on success).",
    )
    p.add_argument("problem", metavar="PROBLEM", help=f"one of {', '.join(PROBLEMS)}")
    p.add_argument("--vertices", type=int, required=True, help="|V|, the number of vertices")
    p.add_argument("--count", type=int, required=True, help="number of instances")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", default="balanced", help=f"one of {', '.join(FAMILIES)}")
    p.add_argument("--directed", action="store_true", help="directed graphs")
    p.add_argument("--edge-prob", type=float, default=None, help="fixed p for --family er")
    p.add_argument("--out", required=True, help="output .jsonl file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.count < 0:
        raise InputError(f"--count must be non-negative, got {args.count}")
    if args.seed < 0:
        raise InputError(f"--seed must be non-negative, got {args.seed}")
    rng = np.random.default_rng(args.seed)
    instances = sample(
        args.problem, args.family, rng, args.vertices, args.count, args.directed, args.edge_prob
    )
    jsonl.write_jsonl(args.out, instances)
    print(f"wrote {len(instances)} {args.problem} instances (|V|={args.vertices}) to {args.out}")
    return 0
