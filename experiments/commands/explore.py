"""``parrots explore``: the interactive width-threshold explorer (paper_figures/explorer.py)."""

from __future__ import annotations

import argparse
import math

from theory.errors import InputError

NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explore",
        help="interactive plot of lower-bound, construction and matched-MoE widths vs K",
        description="Sliders for |V|, H, p, MLP ratio and K (log scale) over the widths of "
        "theory/bounds.py, with K* marked and empirical width thresholds from "
        "experiments/results/ overlaid. --save FILE.png renders it headless.",
    )
    p.add_argument("--vertices", type=int, default=64, help="|V| (default 64)")
    p.add_argument("--heads", type=int, default=2, help="attention heads H (default 2)")
    p.add_argument("--bits", type=int, default=16, help="precision p (default 16)")
    p.add_argument("--mlp-ratio", type=float, default=4.0, help="MLP ratio (default 4)")
    p.add_argument("--experts", type=int, default=64, help="the K read out (default 64)")
    p.add_argument("--results", default=None, help="results folder (default experiments/results)")
    p.add_argument("--save", metavar="FILE.png", default=None, help="render to a file and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    if args.save:
        matplotlib.use("Agg")
    if args.experts < 1:
        raise InputError(f"--experts must be >= 1, got {args.experts}")
    from paper_figures.explorer import RESULTS_DIR, Explorer, Settings, load_empirical

    settings = Settings(
        vertices=args.vertices,
        heads=args.heads,
        bits=args.bits,
        mlp_ratio=args.mlp_ratio,
        log2_experts=math.log2(args.experts),
    )
    empirical = load_empirical(args.results or RESULTS_DIR)
    if not args.save and matplotlib.get_backend().lower() in NON_INTERACTIVE:
        raise InputError(
            f"no interactive display (matplotlib backend {matplotlib.get_backend()!r}); "
            "use --save FILE.png"
        )
    explorer = Explorer(settings, empirical)
    if args.save:
        print(explorer.save(args.save))
        return 0
    import matplotlib.pyplot as plt

    plt.show()
    return 0
