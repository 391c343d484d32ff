"""Reading sweep result rows for the figures (the format of ``experiments/results.py``).

Figures import this, ``theory``, numpy and matplotlib only: the committed files are the
contract, so a figure never imports experiment code.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parents[1] / "experiments" / "results"
SCALE_ORDER = ("paper", "small", "tiny")  # the largest scale that has rows wins


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete rows of a JSON-lines file; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise
    return rows


def sweep_rows(
    sweep: str, results_dir: Path = RESULTS_DIR, scale: str | None = None
) -> tuple[list[dict[str, Any]], Path | None]:
    """The ``ok`` rows of ``<results>/<sweep>/<scale>.jsonl`` (the last row of each run id),
    for ``scale`` or the largest scale present; and the file read (None if none)."""
    folder = Path(results_dir) / sweep
    for name in (scale,) if scale else SCALE_ORDER:
        path = folder / f"{name}.jsonl"
        latest: dict[str, dict[str, Any]] = {}
        for row in read_jsonl(path):
            latest[str(row.get("run_id"))] = row
        rows = [r for r in latest.values() if r.get("status") == "ok"]
        if rows:
            return rows, path
    return [], None


def every_scale(
    sweep: str, results_dir: Path = RESULTS_DIR
) -> Iterator[tuple[str, list[dict[str, Any]], Path]]:
    """``(scale, rows, file)`` of each scale with ``ok`` rows, largest first (for the figures
    that draw every scale side by side, never pooled)."""
    for scale in SCALE_ORDER:
        rows, path = sweep_rows(sweep, results_dir, scale=scale)
        if path is not None:  # None: no ok row at this scale
            yield scale, rows, path


def planned_runs(path: Path) -> int | None:
    """How many runs the sweep saved beside ``path`` (``<scale>.sweep.json``) expands to:
    per grid, the product of the axis lengths (sweep's and grid's) times the seeds."""
    spec_path = Path(path).with_suffix(".sweep.json")
    if not spec_path.exists():
        return None
    spec = json.loads(spec_path.read_text())
    total = 0
    for grid in spec.get("grids") or [{"axes": {}}]:
        count = len(spec.get("seeds", [0]))
        for values in (*spec.get("axes", {}).values(), *grid.get("axes", {}).values()):
            count *= len(values)
        total += count
    return total


def source_label(path: Path, rows: list[dict[str, Any]]) -> str:
    """``reasoning/paper.jsonl`` plus ", 36 of 264 runs" when the sweep is not complete."""
    label = f"{path.parent.name}/{path.name}"
    planned = planned_runs(path)
    if planned is not None and len(rows) < planned:
        label += f", {len(rows)} of {planned} runs"
    return label


def mean_std(
    rows: Iterable[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
    value: Callable[[dict[str, Any]], float],
) -> dict[Any, tuple[float, float, int]]:
    """Group rows by ``key`` (seeds pooled): mean, std (ddof 1; 0 for one seed), count."""
    groups: dict[Any, list[float]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(float(value(row)))
    out = {}
    for k, vals in groups.items():
        a = np.asarray(vals)
        out[k] = (float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a))
    return dict(sorted(out.items()))  # keys of one call are of one kind: numbers or tuples


def save(fig: Any, out_dir: Path, stem: str) -> list[Path]:
    """PNG and PDF of ``fig`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1], metadata={"CreationDate": None})  # byte-identical reruns
    return paths
