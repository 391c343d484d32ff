"""LADS on the constructed joint space: accuracy against the text/image alignment angle ρ.

Reads ``experiments/results/lads/rho_sweep.jsonl`` (and ``bias_sweep.jsonl`` and
``no_interaction_sweep.jsonl`` when present), written by ``parrots lads --synthetic --sweep``
(with ``--bias``; with ``--interaction 0 --out ...``). Makes
``fig_lads.png`` (unseen-domain and extended accuracy vs ρ, the paired gain over the linear
probe, and worst-group accuracy in the bias variant; mean ± std over seeds) and
``lads_ablation.md`` (every method at ρ = 0° and 90°, with the augmentation diagnostics).
The embeddings are constructed, not CLIP.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results" / "lads"

LINES = {  # method: (label, colour, style)
    "lp": ("linear probe (LP)", "black", "-"),
    "lp_zs_init": ("LP, zero-shot init", "grey", ":"),
    "zs_domain": ("zero-shot, domain prompts", "tab:purple", "--"),
    "lp_zs_ensemble": ("LP + zero-shot ensemble", "tab:brown", "-."),
    "addition": ("Addition x + λΔt", "tab:orange", "-"),
    "lads_alpha0": ("LADS α = 0", "tab:cyan", "--"),
    "lads_alpha0.5": ("LADS α = 0.5", "tab:blue", "-"),
    "lads_alpha1": ("LADS α = 1", "tab:green", "-"),
}


SCALAR_KEYS = ("train_domain", "unseen", "extended", "worst_domain")
DIAG_KEYS = ("domain_shift", "nn_domain", "nn_class")


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a torn last line from a crash
                continue
            raise
        if row.get("status") == "ok":
            rows.append(row)
    return rows


def _by_rho(rows: list[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    """ρ → the metrics of each seed (the last row wins if a (ρ, seed) was run twice)."""
    latest: dict[tuple[float, int], dict[str, Any]] = {}
    for row in rows:
        space = row["config"]["space"]
        latest[(float(space["rho_deg"]), int(space["seed"]))] = row["metrics"]
    out: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for (rho, _), metrics in sorted(latest.items()):
        out[rho].append(metrics)
    return dict(sorted(out.items()))


def _stat(runs: list[dict[str, Any]], section: str, name: str, key: str) -> tuple[float, float]:
    vals = np.array([r[section][name][key] for r in runs if name in r[section]], dtype=float)
    if len(vals) == 0:
        return float("nan"), float("nan")
    return float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0


def _plot_metric(ax, grouped, key: str, title: str) -> None:
    rhos = list(grouped)
    for name, (label, colour, style) in LINES.items():
        stats = [_stat(grouped[r], "methods", name, key) for r in rhos]
        mean, std = np.array(stats).T
        ax.errorbar(rhos, mean, yerr=std, label=label, color=colour, ls=style, capsize=2, lw=1.3)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("ρ: angle between text and image domain shift (°)")
    ax.set_xticks(rhos)
    ax.grid(alpha=0.3)


def _plot_gain(ax, grouped) -> None:
    rhos = list(grouped)
    for name in ("addition", "lads_alpha0", "lads_alpha0.5", "lads_alpha1"):
        label, colour, style = LINES[name]
        gains = [
            [r["methods"][name]["unseen"] - r["methods"]["lp"]["unseen"] for r in grouped[rho]]
            for rho in rhos
        ]
        mean = [np.mean(g) for g in gains]
        std = [np.std(g, ddof=1) if len(g) > 1 else 0.0 for g in gains]
        ax.errorbar(rhos, mean, yerr=std, label=label, color=colour, ls=style, capsize=2, lw=1.3)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_title("unseen-domain gain over LP (paired by seed)", fontsize=10)
    ax.set_xlabel("ρ (°)")
    ax.set_xticks(rhos)
    ax.grid(alpha=0.3)


def _plot_bias(ax, grouped) -> None:
    rhos = list(grouped)
    names = {
        "lp": ("linear probe", "black", "-"),
        "zs_domain": ("zero-shot, domain prompts", "tab:purple", "--"),
        "addition": ("Addition", "tab:orange", "-"),
        "lads_alpha0.5": ("LADS α = 0.5", "tab:blue", "-"),
        "lads_alpha0.5_no_domain_labels": ("LADS α = 0.5, all domain labels 0", "tab:red", ":"),
    }
    for name, (label, colour, style) in names.items():
        mean, std = np.array([_stat(grouped[r], "methods", name, "worst_group") for r in rhos]).T
        ax.errorbar(rhos, mean, yerr=std, label=label, color=colour, ls=style, capsize=2, lw=1.3)
    ax.set_title("bias variant: worst-group accuracy", fontsize=10)
    ax.set_xlabel("ρ (°)")
    ax.set_xticks(rhos)
    ax.grid(alpha=0.3)


ORDER = (
    "zs_generic", "zs_domain", "lp", "lp_zs_init", "lp_zs_ensemble", "addition",
    "lads_alpha0", "lads_alpha0.5", "lads_alpha1", "lads_zs_ensemble",
)  # fmt: skip


def _ordered(names) -> list[str]:
    names = list(names)
    return [n for n in ORDER if n in names] + sorted(n for n in names if n not in ORDER)


def _cell(runs, section: str, name: str, key: str, digits: int = 3) -> str:
    m, s = _stat(runs, section, name, key)
    return "" if np.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def _table(grouped, bias_grouped, flat_grouped=None) -> str:
    lines = [
        "# LADS ablation on the constructed joint space (synthetic embeddings, not CLIP)",
        "",
        "Mean ± std over seeds, from `experiments/results/lads/rho_sweep.jsonl` (written by "
        "`parrots lads --synthetic --sweep`); regenerate with `parrots figures --only fig_lads`."
        " Diagnostics of the augmented embeddings: `shift` = movement along the mean test-domain"
        " gap (1 = the whole gap), `nn dom` / `nn cls` = share whose nearest real test embedding"
        " is in the intended domain / has the same class.",
    ]
    for rho in (r for r in (0.0, 45.0, 90.0) if r in grouped):
        runs = grouped[rho]
        lines += [
            "",
            f"## ρ = {rho:g}° ({len(runs)} seeds)",
            "",
            "| method | train domain | unseen | extended | worst domain "
            "| shift | nn dom | nn cls |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in _ordered(runs[0]["methods"]):
            cells = [_cell(runs, "methods", name, k) for k in SCALAR_KEYS]
            cells += [_cell(runs, "diagnostics", name, k, 2) for k in DIAG_KEYS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if flat_grouped:
        lines += _ends_table(
            flat_grouped,
            "Without the class × domain interaction (κ = 0: the true shift is a translation"
            " plus the loss of the training-only cue)",
            "From `experiments/results/lads/no_interaction_sweep.jsonl`; {seeds} seeds.",
            (("unseen", "unseen"), ("extended", "extended")),
        )
    if bias_grouped:
        lines += _ends_table(
            bias_grouped,
            "Bias variant (Waterbirds-like: attribute = class in all training data)",
            "From `experiments/results/lads/bias_sweep.jsonl`; worst-group and mean-group test "
            "accuracy over the 4 (class, attribute) groups; {seeds} seeds.",
            (("worst_group", "worst group"), ("mean_group", "mean group")),
        )
    return "\n".join(lines) + "\n"


def _ends_table(grouped, heading: str, source: str, columns) -> list[str]:
    """A section with one column per (metric, ρ): each metric at every ρ of ``grouped``."""
    ends = list(grouped)
    header = " | ".join(f"{label} ρ={r:g}°" for _, label in columns for r in ends)
    lines = [
        "",
        f"## {heading}",
        "",
        source.format(seeds=len(grouped[ends[0]])),
        "",
        f"| method | {header} |",
        "|---" * (1 + len(columns) * len(ends)) + "|",
    ]
    for name in _ordered(grouped[ends[0]][0]["methods"]):
        cells = [_cell(grouped[r], "methods", name, key) for key, _ in columns for r in ends]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def make(out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = _by_rho(_rows(RESULTS / "rho_sweep.jsonl"))
    if not grouped:
        return []
    bias_grouped = _by_rho(_rows(RESULTS / "bias_sweep.jsonl"))
    panels = 4 if bias_grouped else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.9), dpi=90)
    _plot_metric(axes[0], grouped, "unseen", "unseen-domain accuracy")
    _plot_metric(axes[1], grouped, "extended", "extended-domain accuracy (pooled)")
    _plot_gain(axes[2], grouped)
    if bias_grouped:
        _plot_bias(axes[3], bias_grouped)
    axes[0].set_ylabel("test accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    centre = 0.375 if bias_grouped else 0.5  # under the three ρ-sweep panels
    fig.legend(
        handles, labels, loc="lower center", bbox_to_anchor=(centre, 0.0), ncol=4, fontsize=8,
        frameon=False,
    )  # fmt: skip
    seeds = len(next(iter(grouped.values())))
    fig.suptitle(
        f"LADS on a constructed joint space (synthetic, not CLIP); mean ± std over {seeds} seeds",
        fontsize=11,
    )
    if bias_grouped:
        handles, labels = axes[3].get_legend_handles_labels()
        fig.legend(
            handles, labels, loc="lower center", bbox_to_anchor=(0.875, 0.0), ncol=2, fontsize=7,
            frameon=False,
        )  # fmt: skip
    fig.tight_layout(rect=(0, 0.13, 1, 0.95))
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / "fig_lads.png"
    fig.savefig(png)
    plt.close(fig)
    table = out_dir / "lads_ablation.md"
    flat_grouped = _by_rho(_rows(RESULTS / "no_interaction_sweep.jsonl"))
    table.write_text(_table(grouped, bias_grouped, flat_grouped))
    return [png, table]
