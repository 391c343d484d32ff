"""A sweep's results as a table: one line per configuration, its seeds summarised.

``parrots sweep NAME --scale S --table`` prints it (Markdown; ``--json`` for the numbers), so
every table of numbers in the README is one command away from the rows it came from.

The rows are a sweep's finished runs (status ``ok``; those ``--only`` selects). Two rows
belong to one *configuration* when their configs agree on every key but ``seed``. The
columns that name a configuration are the config keys whose value is not the same in every
row (a key constant over the table says nothing about any one line), ``grid`` first, the
others in alphabetical order, and the lines sorted by them; then ``seeds``, the
number of rows, and one column per metric. A metric over the n rows of a line shows

    mean [min–max]        (or the one value when n = 1),

of the values that are numbers; a run without the metric (None: a threshold no width
reached) is counted as ``k none`` beside them, never averaged in as zero.
"""

from __future__ import annotations

import math
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
    """One configuration: its values of the table's key columns, and per metric the values
    of its runs (None where a run has no value)."""

    key: tuple[Any, ...]
    values: dict[str, list[float | None]]

    @property
    def seeds(self) -> int:
        return len(next(iter(self.values.values()), []))


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]  # the config keys that vary
    metrics: tuple[str, ...]
    lines: tuple[Line, ...]

    def to_dict(self) -> dict[str, Any]:
        out = []
        for line in self.lines:
            entry: dict[str, Any] = dict(zip(self.columns, line.key, strict=True))
            entry["seeds"] = line.seeds
            for m in self.metrics:
                entry[m] = summary(line.values[m])
            out.append(entry)
        return {"columns": list(self.columns), "metrics": list(self.metrics), "lines": out}

    def markdown(self) -> str:
        head = [*self.columns, "seeds", *self.metrics]
        body = [
            [
                *(_cell(v) for v in line.key),
                str(line.seeds),
                *(_stat_cell(line.values[m]) for m in self.metrics),
            ]
            for line in self.lines
        ]
        rows = [head, ["---"] * len(head), *body]
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"n", "none", "mean", "min", "max"}`` over the values that are numbers."""
    nums = [float(v) for v in values if v is not None]
    return {
        "n": len(nums),
        "none": len(values) - len(nums),
        "mean": sum(nums) / len(nums) if nums else None,
        "min": min(nums) if nums else None,
        "max": max(nums) if nums else None,
    }


def results_table(
    rows: Iterable[Mapping[str, Any]], metrics: Sequence[str] | None = None, sweep: str = ""
) -> Table:
    """The table of the finished ``rows`` (see the module docstring). ``metrics`` default to
    those of :data:`HEADLINE` for ``sweep`` that some row has, else to every metric that is a
    number in some row.
    Raises :class:`InputError` for a metric no row has, or one that is not a number."""
    done = [r for r in rows if r.get("status") == "ok"]
    if not done:
        raise InputError("no finished runs to tabulate (see --status)")
    if metrics is None:  # the headline metrics the rows have, else every number
        numbers = {k for r in done for k, v in r["metrics"].items() if _is_number(v)}
        metrics = [m for m in HEADLINE.get(sweep, ()) if m in numbers] or sorted(numbers)
    for m in metrics:
        present = [r["metrics"][m] for r in done if r["metrics"].get(m) is not None]
        if not present:
            known = sorted({k for r in done for k in r["metrics"]})
            raise InputError(f"no finished run has the metric {m!r}; the rows have {known}")
        if not all(_is_number(v) for v in present):
            raise InputError(f"the metric {m!r} is not a number in every row")
    configs = [{k: v for k, v in r["config"].items() if k != "seed"} for r in done]
    keys = sorted({k for c in configs for k in c}, key=lambda k: (k != "grid", k))  # grid first
    columns = tuple(k for k in keys if len({_hashable(c.get(k)) for c in configs}) > 1)
    lines: dict[tuple[Any, ...], dict[str, list[float | None]]] = {}
    for config, row in zip(configs, done, strict=True):
        key = tuple(config.get(k) for k in columns)
        values = lines.setdefault(key, {m: [] for m in metrics})
        for m in metrics:
            values[m].append(row["metrics"].get(m))
    order = sorted(lines, key=lambda key: tuple(_order(v) for v in key))
    return Table(columns, tuple(metrics), tuple(Line(k, lines[k]) for k in order))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _hashable(v: Any) -> Any:
    return repr(v) if isinstance(v, (list, dict)) else v


def _order(v: Any) -> tuple[int, Any]:
    """Sort key: missing first, then numbers by value, then anything else by its text."""
    if v is None:
        return (0, 0)
    if _is_number(v):
        return (1, v)
    return (2, str(v))


def _cell(v: Any) -> str:
    return "" if v is None else _number(v) if _is_number(v) else str(v)


def _number(v: float) -> str:
    if float(v).is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:,.1f}"


def _stat_cell(values: Sequence[float | None]) -> str:
    s = summary(values)
    none = f"{s['none']} none" if s["none"] else ""
    if not s["n"]:
        return none
    if s["n"] == 1:
        text = _number(s["mean"])
    elif s["min"] == s["max"]:
        text = _number(s["min"])
    else:
        text = f"{_number(s['mean'])} [{_number(s['min'])}–{_number(s['max'])}]"
    return f"{text}, {none}" if none else text
