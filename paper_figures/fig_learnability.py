"""Learning curves of dense models on balanced length-2 path: held-out accuracy against the
training instances seen (steps × batch), one panel per (layers, |V|), one line per run.

Reads ``experiments/results/learnability/<scale>.jsonl`` (the largest scale present), written by
``parrots sweep learnability``. Each row's ``curve.evals`` holds its held-out evaluations. A
line is labelled by its width and by whatever else varies between the runs of its panel
(steps, lr, heads, a curriculum over |V|, the seed, the device), so variants read apart
without a legend written by hand. The dotted line is the target at which a run stops; a run
that stopped there ends in a dot.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from paper_figures.sweep_rows import RESULTS_DIR, save, source_label, sweep_rows

# settings that identify a panel or a line's colour, or that every run shares by design
_NOT_IN_LABEL = {"layers", "vertices", "width", "grid", "task", "eval_size", "eval_interval"}


class Line:
    """One run's curve, ready to draw."""

    def __init__(self, row: dict[str, Any], varying: list[str]) -> None:
        config = row["config"]
        batch = int(config["batch"])
        evals = row["curve"]["evals"]
        self.width = int(config["width"])
        self.instances = [step * batch / 1e6 for step, _ in evals]  # millions
        self.accuracy = [float(acc) for _, acc in evals]
        extras = [f"{k}={config.get(k, '–')}" for k in varying if k != "device"]
        if "device" in varying:
            extras.append(device_name(row))
        self.label = ", ".join([f"m={self.width}", *extras])
        self.stopped = bool(row["metrics"].get("stopped_early"))
        self.target = config.get("target_accuracy")


def device_name(row: dict[str, Any]) -> str:
    """The row's device, short: "NVIDIA H100 80GB HBM3" -> "H100"."""
    name = str((row.get("provenance") or {}).get("device") or "?")
    return name.split()[1] if name.startswith("NVIDIA ") and " " in name[7:] else name


def panels(rows: list[dict[str, Any]]) -> dict[tuple[int, int], list[Line]]:
    """(layers, |V|) -> the lines of its runs, by width (then in row order); rows without
    evaluations are left out. A setting goes into the labels when it differs between the
    panel's runs."""
    grouped: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("curve", {}).get("evals"):
            config = row["config"]
            grouped[(int(config["layers"]), int(config["vertices"]))].append(row)
    out = {}
    for key in sorted(grouped, key=lambda k: (-k[0], k[1])):  # 2 layers first, then |V|
        group = grouped[key]
        names = sorted({name for r in group for name in r["config"]} - _NOT_IN_LABEL)
        varying = [name for name in names if len({repr(r["config"].get(name)) for r in group}) > 1]
        if len({device_name(r) for r in group}) > 1:
            varying.append("device")
        lines = [Line(r, varying) for r in group]
        out[key] = sorted(lines, key=lambda line: line.width)  # stable: sweep order
    return out


def make(out_dir: Path, results_dir: Path = RESULTS_DIR) -> list[Path]:
    rows, path = sweep_rows("learnability", results_dir)
    drawn = panels(rows)
    if not drawn:
        print("fig_learnability: no rows in experiments/results/learnability/; skipped")
        return []
    assert path is not None
    n = len(drawn)
    cols = min(n, 2)
    fig = Figure(figsize=(6.0 * cols, 4.2 * ((n + cols - 1) // cols)))
    axes = np.atleast_1d(fig.subplots((n + cols - 1) // cols, cols, squeeze=False)).ravel()
    widths = sorted({line.width for lines in drawn.values() for line in lines})
    colour = {w: f"C{i % 10}" for i, w in enumerate(widths)}
    for ax, ((layers, vertices), lines) in zip(axes[:n], drawn.items(), strict=True):
        styles: dict[int, int] = defaultdict(int)  # lines of one width get distinct dashes
        for line in lines:
            dash = ("-", "--", "-.", ":")[styles[line.width] % 4]
            styles[line.width] += 1
            ax.plot(
                line.instances,
                line.accuracy,
                ls=dash,
                color=colour[line.width],
                label=line.label,
                lw=1.4,
            )
            if line.stopped:
                ax.plot(line.instances[-1], line.accuracy[-1], "o", color=colour[line.width])
        targets = {line.target for line in lines if line.target is not None}
        for target in targets:
            ax.axhline(float(target), color="grey", ls=":", lw=1)
        ax.axhline(0.5, color="grey", lw=0.6)
        ax.set_ylim(0.45, 1.01)
        ax.set_title(f"{layers} layer{'s' if layers > 1 else ''}, |V| = {vertices}", fontsize=10)
        ax.set_xlabel("training instances seen (millions)")
        ax.set_ylabel("held-out accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(f"Learnability of length-2 path ({source_label(path, rows)})", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "fig_learnability")
