"""Empirical width threshold against |V|: the smallest dense width whose held-out accuracy
reached the target on length-2 path, beside the theory's one-layer lower bound
(``theory.bounds.lower_bound_width``, at p = 1 and 4 bits; vacuous at p ≥ 8 for these |V|)
and the one-layer dense construction's width (``dense_construction_width`` = 2|V| + 4).

Reads ``experiments/results/threshold/<scale>.jsonl`` (the largest scale present), written by
``parrots sweep threshold --scale small``. The trained models have the layers the sweep
gives (2 on CPU: one layer does not learn in these budgets), the theory is of one layer, and
a width "not reached" may be a training budget too short, not a capacity limit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from paper_figures.sweep_rows import RESULTS_DIR, save, sweep_rows
from theory.bounds import dense_construction_width, lower_bound_width


def make(out_dir: Path, results_dir: Path = RESULTS_DIR) -> list[Path]:
    rows, path = sweep_rows("threshold", results_dir)
    if not rows:
        print("fig_threshold: no rows in experiments/results/threshold/; skipped")
        return []
    assert path is not None
    heads = int(rows[0]["config"]["heads"])
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    found = [r for r in rows if isinstance(r["metrics"].get("width_threshold"), (int, float))]
    missed = [r for r in rows if r not in found]
    jitter = np.random.default_rng(0)
    if found:
        xs = [r["config"]["vertices"] * (1 + 0.02 * jitter.standard_normal()) for r in found]
        ax.scatter(
            xs,
            [r["metrics"]["width_threshold"] for r in found],
            color="tab:blue",
            zorder=3,
            label=f"trained, {found[0]['config']['layers']} layers: smallest "
            f"width ≥ {found[0]['config']['target']:.0%}",
        )
    if missed:
        ax.scatter(
            [r["config"]["vertices"] for r in missed],
            [r["metrics"]["max_width_tried"] for r in missed],
            marker="^",
            facecolors="none",
            edgecolors="tab:blue",
            zorder=3,
            label="not reached up to this width",
        )
    all_v = [int(r["config"]["vertices"]) for r in rows]
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
    ax.legend(fontsize=7)
    ax.set_title(f"Width threshold vs |V| ({path.parent.name}/{path.name})", fontsize=10)
    fig.tight_layout()
    return save(fig, out_dir, "fig_threshold")
