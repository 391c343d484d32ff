"""Learning curves of dense models on balanced length-2 path: held-out accuracy against the
training instances seen (steps × batch, log scale), one panel per (scale, layers, |V|), one
line per run.

Reads ``experiments/results/learnability/<scale>.jsonl`` for every scale with rows, written by
``parrots sweep learnability``: paper (a GPU, or a CPU where the row says so) and small (|V| =
8 and 12, a CPU). Each row's ``curve.evals`` holds its held-out evaluations. A line is
labelled by its width and by whatever sets it apart from most runs of its panel (steps,
batch, lr, heads, a curriculum over |V|; the device where devices mix), so variants read
apart without a legend written by hand. The dotted line is the target at which a run
stops; a run that stopped there ends in a dot.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from paper_figures.sweep_rows import RESULTS_DIR, every_scale, save, source_label

# settings that identify a panel or a line's colour, or that every run shares by design
_NOT_IN_LABEL = {
    "layers",
    "vertices",
    "width",
    "grid",
    "task",
    "eval_size",
    "eval_interval",
    "target_accuracy",  # drawn as its own dotted line
}


class Line:
    """One run's curve, ready to draw."""

    def __init__(self, row: dict[str, Any], usual: dict[str, str], device: bool) -> None:
        config = row["config"]
        batch = int(config["batch"])
        evals = row["curve"]["evals"]
        self.width = int(config["width"])
        self.instances = [step * batch / 1e6 for step, _ in evals]  # millions
        self.accuracy = [float(acc) for _, acc in evals]
        # only what sets the run apart from its panel's usual setting
        extras = [
            f"{k}={config[k]}" if k in config else f"no {k}"
            for k, value in usual.items()
            if repr(config.get(k)) != value
        ]
        if device:
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
    evaluations are left out. A line's label names each setting in which it differs from
    the value most of the panel's runs have (the first seen, on a tie), and the device
    wherever the panel mixes devices."""
    grouped: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("curve", {}).get("evals"):
            config = row["config"]
            grouped[(int(config["layers"]), int(config["vertices"]))].append(row)
    out = {}
    for key in sorted(grouped, key=lambda k: (-k[0], k[1])):  # 2 layers first, then |V|
        group = grouped[key]
        names = sorted({name for r in group for name in r["config"]} - _NOT_IN_LABEL)
        usual = {}
        for name in names:
            seen = Counter(repr(r["config"].get(name)) for r in group)  # insertion-ordered
            if len(seen) > 1:
                usual[name] = seen.most_common(1)[0][0]
        mixed = len({device_name(r) for r in group}) > 1
        lines = [Line(r, usual, mixed) for r in group]
        out[key] = sorted(lines, key=lambda line: line.width)  # stable: sweep order
    return out


def make(out_dir: Path, results_dir: Path = RESULTS_DIR) -> list[Path]:
    drawn: dict[tuple[str, int, int], list[Line]] = {}
    sources = []
    for scale, rows, path in every_scale("learnability", results_dir):  # paper first
        scale_panels = panels(rows)
        if scale_panels:
            sources.append(source_label(path, rows))
            drawn.update({(scale, *key): lines for key, lines in scale_panels.items()})
    if not drawn:
        print("fig_learnability: no rows in experiments/results/learnability/; skipped")
        return []
    n = len(drawn)
    cols = min(n, 3)
    rows_of_panels = (n + cols - 1) // cols
    fig = Figure(figsize=(5.2 * cols, 4.0 * rows_of_panels))
    axes = np.atleast_1d(fig.subplots(rows_of_panels, cols, squeeze=False)).ravel()
    widths = sorted({line.width for lines in drawn.values() for line in lines})
    colour = {w: f"C{i % 10}" for i, w in enumerate(widths)}
    for ax, ((scale, layers, vertices), lines) in zip(axes[:n], drawn.items(), strict=True):
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
        for target in {line.target for line in lines if line.target is not None}:
            ax.axhline(float(target), color="grey", ls=":", lw=1)
        ax.axhline(0.5, color="grey", lw=0.6)
        ax.set_ylim(0.45, 1.01)
        ax.set_xscale("log")  # runs of 0.2M and of 8M instances, on one axis
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        depth = f"{layers} layer{'s' if layers > 1 else ''}"
        ax.set_title(f"{depth}, |V| = {vertices} ({scale} scale)", fontsize=10)
        ax.set_xlabel("training instances seen (millions)")
        ax.set_ylabel("held-out accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(f"Learnability of length-2 path ({'; '.join(sources)})", fontsize=11)
    fig.tight_layout()
    return save(fig, out_dir, "fig_learnability")
