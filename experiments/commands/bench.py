"""``parrots bench NAME``: benchmarks that print measured ratios (see experiments/benchmarks)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil

from experiments import benchmarks


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
        q.add_argument("--json", action="store_true", help="print only the JSON object")
        q.set_defaults(func=run, bench_run=module.run)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = args.bench_run(args)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
