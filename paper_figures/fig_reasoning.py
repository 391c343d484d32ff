"""Length-2 path: held-out accuracy against total parameters (dense widths, MoE expert counts,
MoE parameter-matched to the widest dense model), and against K: at a fixed active width
(total parameters grow with K) and at the matched total (the width shrinks about as 1/√K).

Reads ``experiments/results/reasoning/<scale>.jsonl`` (the largest scale present), written by
``parrots sweep reasoning --scale small``. Mean ± std over seeds; one row of panels per depth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from paper_figures.sweep_rows import RESULTS_DIR, mean_std, save, source_label, sweep_rows


def _acc(row: dict[str, Any]) -> float:
    return float(row["metrics"]["accuracy"])


def matched_curve(
    dense: list[dict[str, Any]], matched: list[dict[str, Any]]
) -> list[tuple[int, int, float, float]]:
    """(K, width, mean, std) of the parameter-matched MoE runs by K, led by K = 1: the dense
    model whose total parameters they match (``matched_dense_width``), when it has rows."""
    if not matched:
        return []
    ref_w = matched[0]["config"]["matched_dense_width"]
    ref = mean_std([r for r in dense if r["config"]["width"] == ref_w], lambda r: 1, _acc)
    by_k = mean_std(matched, lambda r: (r["config"]["experts"], r["config"]["width"]), _acc)
    head = [(1, ref_w, ref[1][0], ref[1][1])] if ref else []
    return head + [(k, w, m, sd) for (k, w), (m, sd, _) in by_k.items()]


def make(out_dir: Path, results_dir: Path = RESULTS_DIR) -> list[Path]:
    rows, path = sweep_rows("reasoning", results_dir)
    if not rows:
        print("fig_reasoning: no rows in experiments/results/reasoning/; skipped")
        return []
    assert path is not None
    layers = sorted({int(r["config"]["layers"]) for r in rows})
    vertices = sorted({int(r["config"]["vertices"]) for r in rows})
    fig = Figure(figsize=(12, 5.6 * len(layers)))
    axes = fig.subplots(len(layers), 2, squeeze=False)
    markers = dict(zip(vertices, ("o", "s", "^", "D"), strict=False))
    for i, depth in enumerate(layers):
        ax_p, ax_k = axes[i]
        for n in vertices:
            sel = [
                r for r in rows if r["config"]["layers"] == depth and r["config"]["vertices"] == n
            ]
            dense = [r for r in sel if r["config"]["grid"] == "dense"]
            moe = [r for r in sel if r["config"]["grid"] == "moe"]
            matched = [r for r in sel if r["config"]["grid"].startswith("matched")]
            mk = markers[n]
            stats = mean_std(
                dense, lambda r: (r["metrics"]["total_params"], r["config"]["width"]), _acc
            )
            if stats:
                xs = [k[0] for k in stats]
                ax_p.errorbar(
                    xs,
                    [v[0] for v in stats.values()],
                    yerr=[v[1] for v in stats.values()],
                    color="black",
                    marker=mk,
                    capsize=2,
                    label=f"dense, widths (|V|={n})",
                )
                for (x, w), (y, _, _) in stats.items():
                    ax_p.annotate(
                        f"m={w}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7
                    )
            for top_k, colour in ((1, "tab:blue"), (2, "tab:orange")):
                part = [r for r in moe if r["config"]["top_k"] == top_k]
                stats = mean_std(
                    part, lambda r: (r["metrics"]["total_params"], r["config"]["experts"]), _acc
                )
                if not stats:
                    continue
                width = part[0]["config"]["width"]
                label = f"MoE m={width}, top-{top_k}, K=" + ",".join(str(k[1]) for k in stats)
                ax_p.errorbar(
                    [k[0] for k in stats],
                    [v[0] for v in stats.values()],
                    yerr=[v[1] for v in stats.values()],
                    color=colour,
                    marker=mk,
                    ls="--",
                    capsize=2,
                    label=label,
                )
                by_k = mean_std(part, lambda r: r["config"]["experts"], _acc)
                ax_k.errorbar(
                    list(by_k),
                    [v[0] for v in by_k.values()],
                    yerr=[v[1] for v in by_k.values()],
                    color=colour,
                    marker=mk,
                    capsize=2,
                    label=f"MoE top-{top_k}, active width {width} (|V|={n})",
                )
                ref = mean_std(
                    [r for r in dense if r["config"]["width"] == width], lambda r: 1, _acc
                )
                if ref and top_k == 1:
                    y, s, _ = ref[1]
                    ax_k.errorbar(
                        [1],
                        [y],
                        yerr=[s],
                        color="black",
                        marker=mk,
                        capsize=2,
                        label=f"dense m={width} (K=1)",
                    )
            stats = mean_std(
                matched, lambda r: (r["metrics"]["total_params"], r["config"]["experts"]), _acc
            )
            if stats:
                ref_w = matched[0]["config"]["matched_dense_width"]
                ax_p.errorbar(
                    [k[0] for k in stats],
                    [v[0] for v in stats.values()],
                    yerr=[v[1] for v in stats.values()],
                    color="tab:red",
                    marker=mk,
                    ls="",
                    capsize=2,
                    label=f"MoE matched to dense m={ref_w} (K="
                    + ",".join(str(k) for k in sorted(k for _, k in stats))
                    + ")",
                )
                curve = matched_curve(dense, matched)
                ax_k.errorbar(
                    [c[0] for c in curve],
                    [c[2] for c in curve],
                    yerr=[c[3] for c in curve],
                    color="tab:red",
                    marker=mk,
                    ls="-.",
                    capsize=2,
                    label=f"matched to dense m={ref_w}'s parameters (|V|={n})",
                )
                for k, w, y, _ in curve:  # the width that the parameter budget leaves
                    ax_k.annotate(
                        f"m={w}",
                        (k, y),
                        textcoords="offset points",
                        xytext=(4, 4),
                        fontsize=7,
                        color="tab:red",
                    )
                # equal parameters: tell K apart; the labels of a second |V| go on the right,
                # where they cannot land on the first one's (K=64 at 0.602 vs K=8 at 0.601)
                dx = -24 if vertices.index(n) % 2 == 0 else 5
                for (x, k), (y, _, _) in stats.items():
                    ax_p.annotate(
                        f"K={k}",
                        (x, y),
                        textcoords="offset points",
                        xytext=(dx, -3),
                        fontsize=7,
                        color="tab:red",
                    )
        for ax in (ax_p, ax_k):
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.set_ylabel("held-out accuracy")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                # below the panel: inside, "best" still hid the |V| = 32 points at small K
                ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
            else:  # a sweep slice not run yet at this scale: say so instead of an empty box
                ax.text(0.5, 0.5, "no runs at this scale yet", ha="center", transform=ax.transAxes)
        ax_p.set_xscale("log")
        ax_p.xaxis.set_minor_formatter(NullFormatter())  # the 2×10^3, 3×10^3 … labels collide
        ax_p.set_xlabel("total parameters")
        ax_p.set_title(f"{depth} layer(s): accuracy vs total parameters", fontsize=10)
        ax_k.set_xscale("log", base=2)
        ax_k.margins(x=0.12)  # room for the width labels of the last K
        ax_k.set_xlabel("experts K")
        ax_k.set_title(
            f"{depth} layer(s): accuracy vs K, fixed active width or matched total", fontsize=10
        )
    fig.suptitle(f"Balanced length-2 path ({source_label(path, rows)})", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "fig_reasoning")
