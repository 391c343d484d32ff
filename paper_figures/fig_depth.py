"""Connectivity and shortest path with deeper models: held-out accuracy against depth (dense
widths and MoE expert counts), and against K at a fixed active width (one line per depth).

Reads ``experiments/results/depth/<scale>.jsonl`` for every scale that has rows, written by
``parrots sweep depth --scale S``. Scales differ in |V| and in training budget, so their series
are never pooled: each is labelled with its |V| and scale and has a marker of its own (as in
``fig_threshold``). Mean ± std over seeds; one row of panels per problem. Shortest-path
accuracy is exact-distance accuracy (chance is well below 1/2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from paper_figures.sweep_rows import RESULTS_DIR, every_scale, mean_std, save, source_label

_TITLES = {"connectivity": "connectivity", "shortest_path": "shortest path (exact distance)"}


def _acc(row: dict[str, Any]) -> float:
    return float(row["metrics"]["accuracy"])


def _line(ax: Any, stats: dict[Any, tuple[float, float, int]], **kw: Any) -> None:
    ax.errorbar(
        list(stats),
        [v[0] for v in stats.values()],
        yerr=[v[1] for v in stats.values()],
        capsize=2,
        **kw,
    )


def make(out_dir: Path, results_dir: Path = RESULTS_DIR) -> list[Path]:
    rows: list[dict[str, Any]] = []
    sources = []
    # the smallest scale first: its series lead the legend
    for scale, scale_rows, path in reversed(list(every_scale("depth", results_dir))):
        rows += [{**r, "scale": scale} for r in scale_rows]
        sources.append(source_label(path, scale_rows))
    if not rows:
        print("fig_depth: no rows in experiments/results/depth/; skipped")
        return []
    problems = sorted({str(r["config"]["problem"]) for r in rows})
    # (scale, |V|) in the order met: one marker each
    series = list(dict.fromkeys((str(r["scale"]), int(r["config"]["vertices"])) for r in rows))
    markers = dict(zip(series, ("o", "s", "^", "D", "v", "P"), strict=False))
    # one shade per dense width over every scale: the same width looks the same everywhere
    all_widths = sorted({int(r["config"]["width"]) for r in rows if r["config"]["grid"] == "dense"})
    grey = {w: str(0.6 * (1 - j / max(1, len(all_widths) - 1))) for j, w in enumerate(all_widths)}
    fig = Figure(figsize=(12, 5.8 * len(problems)))
    axes = fig.subplots(len(problems), 2, squeeze=False)
    for i, problem in enumerate(problems):
        ax_l, ax_k = axes[i]
        for scale, n in series:
            sel = [
                r
                for r in rows
                if r["config"]["problem"] == problem
                and r["config"]["vertices"] == n
                and r["scale"] == scale
            ]
            where = f"|V|={n}, {scale}"
            dense = [r for r in sel if r["config"]["grid"] == "dense"]
            moe = [r for r in sel if r["config"]["grid"] == "moe"]
            mk = markers.get((scale, n), "x")
            widths = sorted({int(r["config"]["width"]) for r in dense})
            for w in widths:
                part = [r for r in dense if r["config"]["width"] == w]
                by_depth = mean_std(part, lambda r: int(r["config"]["layers"]), _acc)
                _line(ax_l, by_depth, color=grey[w], marker=mk, label=f"dense m={w} ({where})")
            counts = sorted({int(r["config"]["experts"]) for r in moe})
            palette = ("tab:blue", "tab:orange", "tab:green", "tab:red")
            colours = dict(zip(counts, palette, strict=False))
            for count in counts:
                part = [r for r in moe if r["config"]["experts"] == count]
                by_depth = mean_std(part, lambda r: int(r["config"]["layers"]), _acc)
                active = part[0]["config"]["width"]
                _line(
                    ax_l,
                    by_depth,
                    color=colours.get(count, "tab:purple"),
                    marker=mk,
                    ls="--",
                    label=f"MoE K={count}, m={active} ({where})",
                )
            for depth in sorted({int(r["config"]["layers"]) for r in sel}):
                part = [r for r in moe if r["config"]["layers"] == depth]
                if not part:
                    continue
                active = part[0]["config"]["width"]
                ref = [
                    r
                    for r in dense
                    if r["config"]["layers"] == depth and r["config"]["width"] == active
                ]
                by_k = mean_std(ref + part, lambda r: int(r["config"]["experts"]), _acc)
                _line(ax_k, by_k, marker=mk, label=f"{depth} layer(s), m={active} ({where})")
        for ax in (ax_l, ax_k):
            ax.set_ylabel("held-out accuracy")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                # below the panel: two scales' series would hide points inside it
                ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
            else:
                ax.text(0.5, 0.5, "no runs at this scale yet", ha="center", transform=ax.transAxes)
        depths = sorted({int(r["config"]["layers"]) for r in rows})
        counts_all = sorted({int(r["config"]["experts"]) for r in rows})
        ax_l.set_xticks(depths, [str(d) for d in depths])
        ax_l.set_xlabel("layers")
        ax_l.set_title(f"{_TITLES.get(problem, problem)}: accuracy vs depth", fontsize=10)
        ax_k.set_xscale("log", base=2)
        ax_k.set_xticks(counts_all, [str(k) for k in counts_all])
        ax_k.set_xlabel("experts K at fixed active width (K=1: the dense model of that width)")
        ax_k.set_title(f"{_TITLES.get(problem, problem)}: accuracy vs K", fontsize=10)
    fig.suptitle(f"Deeper models ({'; '.join(sources)})", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "fig_depth")
