"""``parrots bench NAME``: benchmarks that print measured ratios (see experiments/benchmarks)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil

from experiments import benchmarks
from experiments.results import append_row, provenance


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks (measured ratios, printed as JSON)",
        description="Run one benchmark; each measures its ratios against a baseline in one run.",
    )
    inner = p.add_subparsers(dest="benchmark", required=True, metavar="NAME")
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{benchmarks.__name__}.{info.name}")
        q = inner.add_parser(info.name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(q)
        q.add_argument("--json", action="store_true", help="print the JSON object on one line")
        q.add_argument(
            "--save", metavar="FILE", help="also append the result, with provenance, to FILE"
        )
        q.set_defaults(func=run, bench_run=module.run)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = args.bench_run(args)
    print(json.dumps(result, indent=None if args.json else 2))
    if args.save:
        row = {"benchmark": args.benchmark, "result": result, "provenance": provenance()}
        append_row(args.save, row)
    return 0
