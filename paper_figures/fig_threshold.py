"""Empirical width threshold against |V|: the smallest dense width whose held-out accuracy
reached the target on length-2 path, beside the theory's one-layer lower bound
(``theory.bounds.lower_bound_width``, at p = 1 and 4 bits; vacuous at p ≥ 8 for these |V|)
and the one-layer dense construction's width (``dense_construction_width`` = 2|V| + 4).

Reads ``experiments/results/threshold/<scale>.jsonl`` for every scale that has rows, written by
``parrots sweep threshold`` (2-layer models), and the learnability sweep's grids that try
several widths at one recipe (:data:`WIDTH_GRIDS`; 1-layer models, the theory's depth, as
squares, 2-layer ones as circles). Each series is drawn in its own colour and labelled with
its training budget: a threshold is a property of a model *and* a budget, so series are not
pooled, and a width "not reached" may be a budget too short, not a capacity limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from paper_figures.sweep_rows import RESULTS_DIR, every_scale, save
from theory.bounds import dense_construction_width, lower_bound_width


@dataclass(frozen=True)
class Series:
    """One scale's points: (|V|, smallest width that reached the target), and (|V|, widest
    width tried) where none did."""

    scale: str
    layers: int
    label: str
    found: list[tuple[int, int]]
    missed: list[tuple[int, int]]
    path: Path
    heads: int


def series(results_dir: Path = RESULTS_DIR) -> list[Series]:
    """Per scale with rows (largest first): its label, the (|V|, threshold) points of runs
    that reached the target, the (|V|, widest width tried) of runs that did not, and the
    file read."""
    out = []
    for scale, rows, path in every_scale("threshold", results_dir):
        config = rows[0]["config"]
        found = [
            (int(r["config"]["vertices"]), int(r["metrics"]["width_threshold"]))
            for r in rows
            if isinstance(r["metrics"].get("width_threshold"), (int, float))
        ]
        missed = [
            (int(r["config"]["vertices"]), int(r["metrics"]["max_width_tried"]))
            for r in rows
            if not isinstance(r["metrics"].get("width_threshold"), (int, float))
        ]
        seeds = len({r["config"].get("seed") for r in rows})
        label = (
            f"{scale}: {config['layers']} layers, ≤ {config['steps']:,} steps × "
            f"{config['batch']:,}, {seeds} seed{'s' if seeds > 1 else ''}; smallest width "
            f"≥ {float(config['target']):.0%}"
        )
        out.append(
            Series(scale, int(config["layers"]), label, found, missed, path, int(config["heads"]))
        )
    return out


# The learnability sweep's grids that try several widths at one recipe, per scale: each
# gives the smallest width that reached its target per |V| (its budgets and target differ
# from the threshold sweep's, so each is its own series with its budget in the label)
WIDTH_GRIDS = {
    "small": ("one_layer_budget",),
    "paper": ("one_layer", "two_layer", "two_layer_curriculum"),
}


def learnability_series(results_dir: Path = RESULTS_DIR) -> list[Series]:
    """Per scale and grid of :data:`WIDTH_GRIDS` with rows of the learnability sweep: the
    smallest width per |V| whose best held-out accuracy reached the run's target, or the
    widest width tried where none did. One-layer grids are the depth the theory is about."""
    out = []
    for scale, scale_rows, path in every_scale("learnability", results_dir):
        for grid in WIDTH_GRIDS.get(scale, ()):
            rows = [r for r in scale_rows if r["config"].get("grid") == grid]
            if not rows:
                continue
            by_vertices: dict[int, list[dict[str, Any]]] = {}
            for r in rows:
                by_vertices.setdefault(int(r["config"]["vertices"]), []).append(r)
            found, missed = [], []
            for v, group in sorted(by_vertices.items()):
                group.sort(key=lambda r: int(r["config"]["width"]))
                hits = [
                    int(r["config"]["width"])
                    for r in group
                    if r["metrics"]["best_accuracy"] >= float(r["config"]["target_accuracy"])
                ]
                if hits:
                    found.append((v, hits[0]))
                else:
                    missed.append((v, int(group[-1]["config"]["width"])))
            config = rows[0]["config"]
            layers = int(config["layers"])
            start = config.get("curriculum")
            label = (
                f"{scale}: {layers} layer{'s' if layers > 1 else ''}, ≤ {config['steps']:,} "
                f"steps × {config['batch']:,}"
                + (f", curriculum from |V| = {start}" if start is not None else "")
                + f" (learnability {grid}); smallest width "
                f"≥ {float(config['target_accuracy']):.0%}"
            )
            out.append(Series(scale, layers, label, found, missed, path, int(config["heads"])))
    return out


def make(out_dir: Path, results_dir: Path = RESULTS_DIR) -> list[Path]:
    drawn = series(results_dir) + learnability_series(results_dir)
    if not drawn:
        print("fig_threshold: no rows in experiments/results/threshold/; skipped")
        return []
    heads = drawn[0].heads
    fig = Figure(figsize=(6.5, 6.0))
    ax = fig.subplots()
    jitter = np.random.default_rng(0)
    all_v = []
    for i, one in enumerate(drawn):
        colour = f"C{i}"
        marker = "s" if one.layers == 1 else "o"
        all_v += [v for v, _ in one.found + one.missed]
        if one.found:
            ax.scatter(
                [v * (1 + 0.02 * jitter.standard_normal()) for v, _ in one.found],
                [w for _, w in one.found],
                color=colour,
                marker=marker,
                zorder=3,
                label=one.label,
            )
        if one.missed:
            ax.scatter(
                [v * (1 + 0.02 * jitter.standard_normal()) for v, _ in one.missed],
                [w for _, w in one.missed],
                marker="^",
                facecolors="none",
                edgecolors=colour,
                zorder=3,
                label=f"{one.scale}, {one.layers} layer{'s' if one.layers > 1 else ''}: "
                "not reached up to this width",
            )
    grid = np.arange(max(3, min(all_v) - 1), max(64, max(all_v)) + 1)
    ax.plot(
        grid,
        [dense_construction_width(int(v)) for v in grid],
        color="black",
        label="1-layer dense construction 2|V|+4",
    )
    for bits, style in ((1, "--"), (4, ":")):
        ax.plot(
            grid,
            [lower_bound_width(int(v), heads, bits) for v in grid],
            color="tab:red",
            ls=style,
            label=f"1-layer lower bound, H={heads}, p={bits}",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("|V|")
    ax.set_ylabel("width m")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    files = ", ".join(dict.fromkeys(f"{d.path.parent.name}/{d.path.name}" for d in drawn))
    ax.set_title(f"Width threshold vs |V|\n({files})", fontsize=8)
    fig.tight_layout()
    return save(fig, out_dir, "fig_threshold")
