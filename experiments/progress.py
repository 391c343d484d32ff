"""Where a sweep stands, read from its rows alone: runs done per grid, and device time spent.

``parrots sweep NAME --scale S --status`` prints it. Nothing here runs anything.

**Device time.** Each row records when its run ended (``provenance.time``, to the second) and
how long it took (``wall_s``), so the run occupied the interval ``[end - wall_s, end]``. Runs on
one device overlap when they ran at once, and a sweep run in several sittings leaves gaps
between them. The *busy time* of a device is the length of the union of its runs' intervals,

    busy = |⋃_i [e_i - w_i, e_i]|,

which counts time with at least one run in flight once, and a gap with none not at all. Then

    runs/hour = n / busy · 3600,        mean concurrency = Σ_i w_i / busy,

the second being the mean number of runs in flight while the device was busy. Busy time
leaves out what a run does not time itself (a worker's start, the runner's own start), so
runs/hour is an upper bound on what a sweep command achieves, and it is measured on the
mix of runs that ran: the runs still missing may cost more or less each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from experiments.results import latest_rows
from experiments.runner import results_path, select_runs
from experiments.sweep import SweepConfig, run_id
from theory.errors import InputError


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of closed intervals ``(start, end)``; each needs start <= end."""
    spans = sorted(intervals)
    total = 0.0
    reach: float | None = None  # end of the merged block being built
    start_block = 0.0
    for start, end in spans:
        if end < start:
            raise InputError(f"interval ends before it starts: ({start}, {end})")
        if reach is None or start > reach:
            if reach is not None:
                total += reach - start_block
            start_block, reach = start, end
        else:
            reach = max(reach, end)
    if reach is not None:
        total += reach - start_block
    return total


def _end_time(row: Mapping[str, Any]) -> float | None:
    """POSIX time at which the row's run ended (its ``provenance.time``), or None."""
    stamp = (row.get("provenance") or {}).get("time")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class DeviceUse:
    """What the rows of one device say about its time (see the module docstring)."""

    device: str
    runs: int  # finished rows (status ok) with a timed interval
    busy_s: float
    run_s: float  # the sum of the runs' own wall times
    # finished runs resumed from a checkpoint: their wall time is their last sitting's, the
    # earlier sittings left no interval, so busy time is short and runs/hour high by them
    resumed: int = 0

    @property
    def runs_per_hour(self) -> float | None:
        return self.runs / self.busy_s * 3600 if self.busy_s > 0 else None

    @property
    def concurrency(self) -> float | None:
        return self.run_s / self.busy_s if self.busy_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        rph, conc = self.runs_per_hour, self.concurrency
        return {
            "device": self.device,
            "runs": self.runs,
            "busy_s": round(self.busy_s, 1),
            "run_s": round(self.run_s, 1),
            "runs_per_hour": None if rph is None else round(rph, 1),
            "mean_concurrency": None if conc is None else round(conc, 2),
            "resumed": self.resumed,
        }


def device_use(rows: Iterable[Mapping[str, Any]]) -> list[DeviceUse]:
    """Busy time, run count and summed wall time per device, busiest first. Rows without a
    wall time or an end stamp (a worker that died) are not counted. A failed run's time is
    busy time, but only finished runs count as runs: a run refused at once is no throughput."""
    spans: dict[str, list[tuple[float, float]]] = {}
    done: Counter[str] = Counter()
    resumed: Counter[str] = Counter()
    for row in rows:
        wall, end = row.get("wall_s"), _end_time(row)
        if not isinstance(wall, (int, float)) or end is None or wall < 0:
            continue
        device = str((row.get("provenance") or {}).get("device") or "?")
        spans.setdefault(device, []).append((end - float(wall), end))
        done[device] += row.get("status") == "ok"
        resumed_from = (row.get("metrics") or {}).get("resumed_from")
        resumed[device] += row.get("status") == "ok" and bool(resumed_from)
    out = [
        DeviceUse(name, done[name], union_length(s), sum(b - a for a, b in s), resumed[name])
        for name, s in spans.items()
    ]
    return sorted(out, key=lambda u: -u.busy_s)


def render_devices(devices: Iterable[DeviceUse], missing: int = 0) -> list[str]:
    """One line per device: runs, busy minutes, runs/hour, mean runs in flight; and, with
    ``missing`` runs left, the busy minutes they would take at that device's measured rate
    (an extrapolation from the mix of runs that ran)."""
    lines = []
    for u in devices:
        rph, conc = u.runs_per_hour, u.concurrency
        if not u.runs:  # failed runs only: busy time, no rate to extrapolate from
            lines.append(f"{u.device}: no finished runs ({u.busy_s / 60:.1f} busy minutes)")
            continue
        rate = "" if rph is None else f", {rph:.0f} runs/hour, {conc:.1f} runs in flight"
        lines.append(f"{u.device}: {u.runs} runs in {u.busy_s / 60:.1f} busy minutes{rate}")
        if u.resumed:
            lines.append(
                f"  {u.resumed} of them resumed: earlier sittings not counted, so the rate is high"
            )
        if missing and rph:
            lines.append(
                f"  at that rate the {missing} missing runs: ~{missing / rph * 60:.0f} min"
            )
    return lines


@dataclass(frozen=True)
class GridCount:
    grid: str
    planned: int
    ok: int
    failed: int

    @property
    def missing(self) -> int:
        return self.planned - self.ok - self.failed


@dataclass(frozen=True)
class SweepStatus:
    sweep: str
    scale: str
    path: Path
    grids: tuple[GridCount, ...]
    devices: tuple[DeviceUse, ...]
    stray: int  # rows whose run id no run of the sweep has (a slice's other runs are not stray)
    rows: tuple[dict[str, Any], ...] = field(default=(), repr=False)  # the counted rows

    @property
    def planned(self) -> int:
        return sum(g.planned for g in self.grids)

    @property
    def ok(self) -> int:
        return sum(g.ok for g in self.grids)

    @property
    def failed(self) -> int:
        return sum(g.failed for g in self.grids)

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.grids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "scale": self.scale,
            "results": str(self.path),
            "planned": self.planned,
            "ok": self.ok,
            "failed": self.failed,
            "missing": self.missing,
            "stray_rows": self.stray,
            "grids": [
                {
                    "grid": g.grid,
                    "planned": g.planned,
                    "ok": g.ok,
                    "failed": g.failed,
                    "missing": g.missing,
                }
                for g in self.grids
            ],
            "devices": [u.to_dict() for u in self.devices],
            "failures": [
                {"run_id": rid, "grid": grid, "error": error}
                for rid, grid, error in self.failures()
            ],
        }

    def failures(self) -> list[tuple[str, str, str]]:
        """(run id, grid, first line of the error) of each failed run, in row order."""
        out = []
        for row in self.rows:
            if row.get("status") != "ok":
                error = str(row.get("error") or "no error recorded").splitlines()[0][:100]
                out.append(
                    (
                        str(row.get("run_id")),
                        str((row.get("config") or {}).get("grid", "all")),
                        error,
                    )
                )
        return out

    def render(self, shown_failures: int = 5) -> str:
        """A plain-text table for a terminal, with the errors of the first failed runs."""
        lines = [
            f"{self.sweep}/{self.scale}: {self.ok} ok, {self.failed} failed, "
            f"{self.missing} missing of {self.planned} planned  ({self.path})"
        ]
        width = max([len("grid"), *(len(g.grid) for g in self.grids)])
        lines.append(f"  {'grid':<{width}}  planned      ok  failed  missing")
        for g in self.grids:
            lines.append(
                f"  {g.grid:<{width}}  {g.planned:>7}  {g.ok:>6}  {g.failed:>6}  {g.missing:>7}"
            )
        if self.stray:
            lines.append(f"  ({self.stray} row(s) belong to runs this sweep no longer has)")
        failures = self.failures()
        for rid, grid, error in failures[:shown_failures]:
            lines.append(f"  failed {rid[:8]} ({grid}): {error}")
        if len(failures) > shown_failures:
            lines.append(f"  ... and {len(failures) - shown_failures} more failed runs")
        lines.extend(f"  {line}" for line in render_devices(self.devices, self.missing))
        return "\n".join(lines)


def sweep_status(
    sweep: SweepConfig,
    results_dir: str | Path,
    only: Mapping[str, Any] | None = None,
) -> SweepStatus:
    """Count the runs of ``sweep`` (those matching ``only``) with an ok row, a failed row, or
    none, per grid; and the device time of the rows that belong to those runs."""
    path = results_path(sweep, results_dir)
    rows = latest_rows(path)
    every = sweep.runs()
    configs = select_runs(every, only)
    ids = {run_id(c): str(c.get("grid", "all")) for c in configs}
    known = {run_id(c) for c in every} if only else set(ids)
    planned = Counter(ids.values())
    ok: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    mine = []
    for rid, row in rows.items():
        grid = ids.get(rid)
        if grid is None:
            continue
        mine.append(row)
        (ok if row.get("status") == "ok" else failed)[grid] += 1
    order = list(dict.fromkeys(ids.values()))  # grids in sweep order
    grids = tuple(GridCount(g, planned[g], ok[g], failed[g]) for g in order)
    return SweepStatus(
        sweep=sweep.name,
        scale=sweep.scale,
        path=path,
        grids=grids,
        devices=tuple(device_use(mine)),
        stray=sum(rid not in known for rid in rows),
        rows=tuple(mine),
    )
