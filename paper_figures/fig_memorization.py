"""Closed-book phone book: entries memorized against K and against total parameters, and the
bits stored per total and per active parameter with the 2 and 3.6 bits/parameter lines.

Reads ``experiments/results/memorization/<scale>.jsonl`` (the largest scale present), written
by ``parrots sweep memorization --scale small``. Mean ± std over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from paper_figures.sweep_rows import RESULTS_DIR, mean_std, save, source_label, sweep_rows

REFERENCE_BITS = (2.0, 3.6)  # bits per parameter reported for trained language models


def _m(key: str) -> Any:
    return lambda row: row["metrics"][key]


def make(out_dir: Path, results_dir: Path = RESULTS_DIR) -> list[Path]:
    rows, path = sweep_rows("memorization", results_dir)
    if not rows:
        print("fig_memorization: no rows in experiments/results/memorization/; skipped")
        return []
    assert path is not None
    entries = sorted({int(r["config"]["entries"]) for r in rows})
    fig = Figure(figsize=(15, 4.3))
    ax_k, ax_p, ax_b = fig.subplots(1, 3)
    colours = dict(
        zip(entries, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"), strict=False)
    )
    for n in entries:
        sel = [r for r in rows if r["config"]["entries"] == n]
        c = colours.get(n, "black")
        by_k = mean_std(sel, lambda r: int(r["config"]["experts"]), _m("entries_memorized"))
        ax_k.errorbar(
            list(by_k),
            [v[0] for v in by_k.values()],
            yerr=[v[1] for v in by_k.values()],
            color=c,
            marker="o",
            capsize=2,
            label=f"{n} entries",
        )
        ax_k.axhline(n, color=c, lw=0.7, ls=":")
        by_p = mean_std(sel, lambda r: int(r["metrics"]["total_params"]), _m("entries_memorized"))
        ax_p.errorbar(
            list(by_p),
            [v[0] for v in by_p.values()],
            yerr=[v[1] for v in by_p.values()],
            color=c,
            marker="o",
            capsize=2,
            label=f"{n} entries",
        )
        for key, style, what in (
            ("bits_per_total_param", "-", "total"),
            ("bits_per_active_param", "--", "active"),
        ):
            by = mean_std(sel, lambda r: int(r["config"]["experts"]), _m(key))
            ax_b.errorbar(
                list(by),
                [v[0] for v in by.values()],
                yerr=[v[1] for v in by.values()],
                color=c,
                marker="o",
                ls=style,
                capsize=2,
                label=f"{n} entries, per {what} param",
            )
    for bits, style in zip(REFERENCE_BITS, (":", "-."), strict=True):
        # in the legend, not written on the plot: the curves cross every free spot near 2
        ax_b.axhline(bits, color="grey", lw=1, ls=style, label=f"{bits} bits/param reference")
    width = rows[0]["config"]["width"]
    hidden = rows[0]["config"].get("mlp_hidden")
    ax_k.set_title(
        f"entries memorized vs K (width {width}, expert hidden {hidden}, top-1)", fontsize=9
    )
    ax_p.set_title("entries memorized vs total parameters", fontsize=9)
    ax_b.set_title("bits stored per total (solid) and active (dashed) parameter", fontsize=9)
    for ax in (ax_k, ax_b):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("experts K")
    ax_p.set_xscale("log")
    ax_p.xaxis.set_minor_formatter(NullFormatter())  # the 2×10^4, 3×10^4 … labels collide
    ax_p.set_xlabel("total parameters")
    ax_k.set_ylabel("entries recalled exactly")
    ax_b.set_ylabel("bits / parameter")
    for ax in (ax_k, ax_p, ax_b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Closed-book phone book ({source_label(path, rows)})", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "fig_memorization")
