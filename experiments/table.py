"""A sweep's results as a table: one line per configuration, its seeds summarised.

``parrots sweep NAME --scale S --table`` prints it (Markdown; ``--json`` for the numbers), so
every table of numbers in the README is one command away from the rows it came from.

The rows are a sweep's finished runs (status ``ok``; those ``--only`` selects). Two rows
belong to one *configuration* when their configs agree on every key but ``seed``. The
columns that name a configuration are the config keys whose value is not the same in every
row (a key constant over the table says nothing about any one line), ``grid`` first, the
others in alphabetical order, and the lines sorted by them (digits in a name by their
value: ``K2`` before ``K16``); then ``seeds``, the number of rows, and one column per
metric. A metric over the n rows of a line shows

    mean [min–max]        (or the one value when n = 1),

of the values that are finite numbers; a run without the metric (None: a threshold no
width reached) is counted as ``k none`` beside them, and a NaN or infinite value (a diverged
run) as ``k nan/inf``: never averaged in. A metric that shares its name with a config
column is headed ``name (metric)``. Integers print as integers, other numbers by size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from theory.errors import InputError

# What each catalogue sweep is read for (the figures' quantities); any other sweep: every
# metric whose values are numbers
HEADLINE: dict[str, tuple[str, ...]] = {
    "reasoning": ("accuracy", "total_params", "active_params"),
    "depth": ("accuracy", "total_params", "active_params"),
    "learnability": ("accuracy", "best_accuracy", "steps"),
    "memorization": (
        "entries_memorized",
        "bits_per_total_param",
        "bits_per_active_param",
        "total_params",
        "active_params",
    ),
    "threshold": ("width_threshold", "max_width_tried"),
    "selftest": ("value", "square"),
}


@dataclass(frozen=True)
class Line:
    """One configuration: its values of the table's key columns, its number of runs, and per
    metric the values of its runs (None where a run has no value)."""

    key: tuple[Any, ...]
    seeds: int
    values: dict[str, list[float | None]]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]  # the config keys that vary
    metrics: tuple[str, ...]
    lines: tuple[Line, ...]

    def to_dict(self) -> dict[str, Any]:
        out = [
            {
                "config": dict(zip(self.columns, line.key, strict=True)),
                "seeds": line.seeds,
                "metrics": {m: summary(line.values[m]) for m in self.metrics},
            }
            for line in self.lines
        ]
        return {"columns": list(self.columns), "metrics": list(self.metrics), "lines": out}

    def markdown(self) -> str:
        clash = set(self.columns) | {"seeds"}
        head = [
            *self.columns,
            "seeds",
            *(f"{m} (metric)" if m in clash else m for m in self.metrics),
        ]
        body = [
            [
                *(_cell(v) for v in line.key),
                str(line.seeds),
                *(_stat_cell(line.values[m]) for m in self.metrics),
            ]
            for line in self.lines
        ]
        rows = [head, ["---"] * len(head), *body]
        return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows)


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"n", "none", "nonfinite", "mean", "min", "max"}``: the statistics over the values
    that are finite numbers, and how many were None and how many NaN or infinite."""
    nums = [v for v in values if v is not None and math.isfinite(v)]
    none = sum(v is None for v in values)
    return {
        "n": len(nums),
        "none": none,
        "nonfinite": len(values) - len(nums) - none,
        "mean": sum(nums) / len(nums) if nums else None,
        "min": min(nums) if nums else None,
        "max": max(nums) if nums else None,
    }


def results_table(
    rows: Iterable[Mapping[str, Any]], metrics: Sequence[str] | None = None, sweep: str = ""
) -> Table:
    """The table of the finished ``rows`` (see the module docstring). ``metrics`` default to
    those of :data:`HEADLINE` for ``sweep`` that some row has, else to every metric that is
    a number (or None) in every row. Raises :class:`InputError` for a metric no row has, or
    one that is not a number (or None) in some row."""
    done = [r for r in rows if r.get("status") == "ok"]
    if not done:
        raise InputError("no finished runs to tabulate (see --status)")
    if metrics is None:  # the headline metrics the rows have, else every numeric one
        names = {k for r in done for k, v in r["metrics"].items() if _is_number(v)}
        numeric = sorted(
            k for k in names if all(_is_number_or_none(r["metrics"].get(k)) for r in done)
        )
        metrics = [m for m in HEADLINE.get(sweep, ()) if m in numeric] or numeric
    for m in metrics:
        if all(r["metrics"].get(m) is None for r in done):
            known = sorted({k for r in done for k in r["metrics"]})
            raise InputError(f"no finished run has the metric {m!r}; the rows have {known}")
        if not all(_is_number_or_none(r["metrics"].get(m)) for r in done):
            raise InputError(f"the metric {m!r} is not a number in every row")
    configs = [{k: v for k, v in r["config"].items() if k != "seed"} for r in done]
    keys = sorted({k for c in configs for k in c}, key=lambda k: (k != "grid", k))  # grid first
    columns = tuple(k for k in keys if len({_identity(c, k) for c in configs}) > 1)
    lines: dict[tuple[Any, ...], Line] = {}
    for config, row in zip(configs, done, strict=True):
        ident = tuple(_identity(config, k) for k in columns)
        if ident not in lines:
            key = tuple(config.get(k) for k in columns)
            lines[ident] = Line(key, 0, {m: [] for m in metrics})
        line = lines[ident]
        lines[ident] = Line(line.key, line.seeds + 1, line.values)
        for m in metrics:
            line.values[m].append(row["metrics"].get(m))
    order = sorted(lines.values(), key=lambda line: tuple(_order(v) for v in line.key))
    return Table(columns, tuple(metrics), tuple(order))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_number_or_none(v: Any) -> bool:
    return v is None or _is_number(v)


_MISSING = object()


def _identity(config: Mapping[str, Any], key: str) -> tuple[str, str]:
    """What tells two configs' values of ``key`` apart: type and value, so that 8 and 8.0,
    True and 1, or a missing key and None are different lines; lists and dicts compare by
    their text."""
    v = config.get(key, _MISSING)
    return ("missing", "") if v is _MISSING else (type(v).__name__, repr(v))


def _order(v: Any) -> tuple[int, Any]:
    """Sort key: missing first, then numbers by value, then anything else by its text, the
    digits in it read as numbers (``..._K2`` before ``..._K16``). ``re.split`` with a group
    alternates text and digits from a text piece on, so two keys compare like with like."""
    if v is None:
        return (0, 0)
    if _is_number(v) and math.isfinite(v):
        return (1, v)
    pieces = re.split(r"(\d+)", str(v))
    return (2, tuple(int(p) if i % 2 else p for i, p in enumerate(pieces)))


def _cell(v: Any) -> str:
    return "" if v is None else _number(v) if _is_number(v) else str(v)


def _number(v: float, integer: bool | None = None) -> str:
    """An int as an int (thousands separated); any other number by its size: 3 decimals,
    one above 100, three significant digits below 0.001 (a learning rate of 3e-4)."""
    if integer if integer is not None else isinstance(v, int):
        return f"{int(v):,}"
    if not math.isfinite(v) or v == 0:
        return str(v)
    if abs(v) < 1e-3:
        return f"{v:.3g}"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:,.1f}"


def _stat_cell(values: Sequence[float | None]) -> str:
    s = summary(values)
    nums = [v for v in values if v is not None and math.isfinite(v)]
    ints = all(isinstance(v, int) for v in nums)  # an int metric's mean may be whole
    counts = [f"{s['none']} none"] if s["none"] else []
    counts += [f"{s['nonfinite']} nan/inf"] if s["nonfinite"] else []
    if not s["n"]:
        return ", ".join(counts)
    mean = s["mean"]
    if s["n"] == 1 or s["min"] == s["max"]:
        text = _number(s["min"], ints)
    else:
        mean_text = _number(mean, ints and float(mean).is_integer())
        text = f"{mean_text} [{_number(s['min'], ints)}–{_number(s['max'], ints)}]"
    return ", ".join([text, *counts])
