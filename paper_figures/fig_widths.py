"""Widths against the number of experts K: the one-layer lower bound, the dense construction,
and the parameter-matched MoE (exact and m_d/√K), with K* marked (theory/bounds.py).

Two settings: |V| = 256 at p = 8 bits and |V| = 1024 at p = 16, one head. Pure theory: no
result file is needed; empirical thresholds are overlaid when ``experiments/results/`` has
rows with ``metrics.width_threshold`` (see :func:`paper_figures.explorer.load_empirical`).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from paper_figures.explorer import Settings, curves, draw, load_empirical

PANELS = (Settings(vertices=256, heads=1, bits=8), Settings(vertices=1024, heads=1, bits=16))


def make(out_dir: Path) -> list[Path]:
    empirical = load_empirical()
    fig = Figure(figsize=(12, 4.8))  # no pyplot: any backend, no global state
    axes = fig.subplots(1, len(PANELS), sharey=True)
    for ax, settings in zip(axes, PANELS, strict=True):
        c = curves(settings, empirical)
        draw(ax, c)
        ax.set_title(
            f"|V|={settings.vertices}, H={settings.heads}, p={settings.bits}: "
            f"K*={c.k_star} (m_d/√K: {c.k_star_approx})",
            fontsize=10,
        )
        if c.k_star is not None:
            ax.annotate(
                f"K*={c.k_star}",
                (c.k_star, c.lower_bound),
                textcoords="offset points",
                xytext=(6, 12),
                fontsize=9,
            )
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(
        "One-layer length-2 path: the width a parameter-matched MoE can afford "
        "vs the width the lower bound demands",
        fontsize=11,
    )
    fig.tight_layout()
    out = Path(out_dir) / "fig_widths.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return [out]
