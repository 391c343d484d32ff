"""``parrots bounds``: the width table of theory.bounds for one (|V|, H, p) and a list of K."""

from __future__ import annotations

import argparse
import json

from theory.errors import InputError


def _experts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--experts must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"--experts needs positive integers, got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bounds",
        help="lower-bound width, construction width, parameter-matched MoE widths and K*",
        description="For length-2 path on |V| vertices (disjointness family, n = |V| - 2): "
        "the one-layer lower bound (m + H) p >= n on the width of any dense or MoE model, "
        "the dense construction's width 2|V| + 4, the width of a K-expert MoE with the same "
        "total parameters as that dense model (exact and m_d/sqrt(K)), and K*, the first K "
        "whose matched MoE is below the bound (theory/bounds.py).",
    )
    p.add_argument("--vertices", type=int, default=64, help="|V| (default 64)")
    p.add_argument("--heads", type=int, default=2, help="attention heads H (default 2)")
    p.add_argument("--bits", type=int, default=16, help="precision p in bits (default 16)")
    p.add_argument("--experts", default="1,4,16,64", help="comma-separated K (default 1,4,16,64)")
    p.add_argument("--mlp-ratio", type=float, default=4.0, help="MLP hidden / width (default 4)")
    p.add_argument("--layers", type=int, default=1, help="layers L of both models (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from theory.bounds import bounds_report  # sympy: loaded only when needed

    report = bounds_report(
        args.vertices,
        args.heads,
        args.bits,
        _experts(args.experts),
        mlp_ratio=args.mlp_ratio,
        layers=args.layers,
    )
    if args.json:
        print(json.dumps(report))
        return 0
    k_star = report["expert_threshold"]
    print(
        f"|V|={report['vertices']} (n={report['middle_vertices']}), H={report['heads']}, "
        f"p={report['bits']}, MLP ratio {report['mlp_ratio']:g}, L={report['layers']}"
    )
    print(
        f"lower bound width  {report['lower_bound_width']:>6}   ((m+H)p >= n; real "
        f"{report['lower_bound_width_real']:.2f}; issue form H(m+1)p >= n: "
        f"{report['lower_bound_width_issue_form']})"
    )
    print(
        f"construction width {report['construction_width']:>6}   "
        f"({report['construction_heads']} heads; ratio {report['ratio']:.1f})"
    )
    print(
        f"K*                 {'none' if k_star is None else k_star:>6}   "
        f"(m_d/sqrt(K) estimate: {report['expert_threshold_approx'] or 'none'})"
    )
    print()
    print(
        f"{'K':>6} {'width':>6} {'real':>8} {'m_d/√K':>8} {'gap':>7} {'total':>12} "
        f"{'active':>12}  below bound"
    )
    for row in report["rows"]:
        print(
            f"{row['experts']:>6} {row['width']:>6} {row['width_real']:>8.2f} "
            f"{row['width_approx']:>8.2f} {row['gap']:>7.2f} {row['total']:>12,} "
            f"{row['active']:>12,}  {'yes' if row['below_lower_bound'] else 'no'}"
        )
    return 0
