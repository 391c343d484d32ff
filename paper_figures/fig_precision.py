"""Precision study of the one-layer dense length-2 construction: for each |V| and float type,
whether it is exact at the provable softmax sharpness β*, and the smallest sharpness β/β*
at which it stays exact on the sampled instances.

Reads the last row of ``experiments/results/constructions/length2_precision.jsonl``, written
by ``parrots verify length2 --precision --save ...``; skipped with a message if absent.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from paper_figures.sweep_rows import RESULTS_DIR, read_jsonl, save

FILE = Path("constructions") / "length2_precision.jsonl"


def make(out_dir: Path, results_dir: Path = RESULTS_DIR) -> list[Path]:
    path = Path(results_dir) / FILE
    rows = [r for r in read_jsonl(path) if isinstance(r.get("rows"), list)]
    if not rows:
        print(f"fig_precision: {path} is absent or empty; skipped")
        return []
    study = rows[-1]["rows"]
    dtypes = sorted({r["dtype"] for r in study})
    fig = Figure(figsize=(11, 4.2))
    ax_s, ax_e = fig.subplots(1, 2)
    for i, dtype in enumerate(dtypes):
        sel = sorted((r for r in study if r["dtype"] == dtype), key=lambda r: r["vertices"])
        colour = f"C{i}"
        xs = [r["vertices"] for r in sel]
        scale = [r.get("smallest_exact_scale") for r in sel]
        ax_s.plot(
            [x for x, s in zip(xs, scale, strict=True) if s is not None],
            [s for s in scale if s is not None],
            color=colour,
            marker="o",
            label=dtype,
        )
        broken = [x for x, s in zip(xs, scale, strict=True) if s is None]
        if broken:
            ax_s.scatter(
                broken,
                [1.0] * len(broken),
                marker="x",
                color=colour,
                label=f"{dtype}: not exact at any scale tried",
            )
        frac = [
            r.get("errors_at_provable_sharpness", 0) / max(1, r.get("instances", 1)) for r in sel
        ]
        ax_e.plot(xs, frac, color=colour, marker="o", label=dtype)
    ax_s.set_xscale("log", base=2)
    ax_s.set_yscale("log")
    ax_s.set_xlabel("|V|")
    ax_s.set_ylabel("smallest exact sharpness β / β*")
    ax_s.set_title("how much sharpness the construction needs", fontsize=10)
    ax_e.set_xscale("log", base=2)
    ax_e.set_xlabel("|V|")
    ax_e.set_ylabel("fraction wrong at β*")
    ax_e.set_title("errors at the provable sharpness β*", fontsize=10)
    for ax in (ax_s, ax_e):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("One-layer dense length-2 construction in finite precision", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "fig_precision")
