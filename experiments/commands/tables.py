"""``parrots tables``: regenerate the README's marked tables from the committed results."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.readme_tables import README, find_blocks, sync
from theory.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tables",
        help="regenerate the README's tables from committed results",
        description="Rewrite each table the README marks with <!-- table: parrots sweep ... "
        "--table --> from the rows under experiments/results/ (experiments/readme_tables.py).",
    )
    p.add_argument("--readme", default=str(README), help="the Markdown file to update")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the tables that differ from the rows",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.readme)
    if not path.exists():
        raise InputError(f"no file at {path}")
    text = path.read_text()
    fresh, stale = sync(text)
    count = len(find_blocks(text.split("\n")))
    for command in stale:
        print(f"{'stale' if args.check else 'updated'}: {command}")
    if args.check:
        print(f"{path.name}: {len(stale)} of {count} tables differ from the rows")
        return 1 if stale else 0
    if stale:
        path.write_text(fresh)
    print(f"{path.name}: {len(stale)} of {count} tables updated")
    return 0
