"""``parrots figures``: regenerate every paper figure from the committed results."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from paper_figures.registry import FIGURES_DIR, figure_makers


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "figures",
        help="regenerate every paper figure from committed results",
        description="Run every paper_figures/fig_*.py on the committed result files.",
    )
    p.add_argument("--out", default=str(FIGURES_DIR), help="output folder")
    p.add_argument("--only", nargs="*", default=None, help="figure module names to make")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    makers = figure_makers()
    if args.only:
        makers = {k: v for k, v in makers.items() if k in set(args.only)}
    if not makers:
        print("no paper figures are defined yet")
    for name, make in makers.items():
        start = time.perf_counter()
        paths = make(out)
        took = time.perf_counter() - start
        for path in paths:
            print(f"{name}: {path} ({took:.1f} s)")
    return 0
