"""Instances as JSON lines: one self-describing object per instance.

    {"problem": "length2", "n": 8, "directed": false, "edges": [[0, 3], [3, 5]],
     "s": 0, "t": 5, "answer": true}

``answer`` is a bool for decision problems and ``{"distance": d, "path": [s, ..., t]}`` for
``shortest_path`` (distance -1 and an empty path when t is unreachable). It is optional when
reading. Every line is validated; a bad one raises InputError naming the file, line and field.
Writing goes through a temporary file renamed into place, so a crash leaves no partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from theory.errors import InputError
from theory.graphs import GraphBatch
from theory.problems import DECISION_PROBLEMS, PROBLEMS, Instances


def records(instances: Instances) -> Iterator[dict[str, Any]]:
    """The JSON objects of a batch, in order."""
    decision = instances.problem in DECISION_PROBLEMS
    for b, edges in enumerate(instances.graphs.edge_lists()):
        if decision:
            answer: Any = bool(instances.answer[b])
        else:
            answer = {
                "distance": int(instances.answer.distance[b]),
                "path": instances.answer.path(b),
            }
        yield {
            "problem": instances.problem,
            "n": instances.n,
            "directed": instances.graphs.directed,
            "edges": [list(e) for e in edges],
            "s": int(instances.s[b]),
            "t": int(instances.t[b]),
            "answer": answer,
        }


def write_atomic(path: str | Path, lines: Iterator[str]) -> None:
    """Write lines to ``path`` via a temporary file in the same folder, renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            for line in lines:
                handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, instances: Instances) -> None:
    write_atomic(path, (json.dumps(r) for r in records(instances)))


@dataclass(frozen=True)
class Record:
    """One validated line: where it came from, its instance's fields, its stored answer."""

    line: int
    problem: str
    n: int
    directed: bool
    edges: list[tuple[int, int]]
    s: int
    t: int
    answer: Any  # None when the line has no answer


def _field(obj: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in obj:
        raise InputError(f"{where}: missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"{where}: field {name!r} has the wrong type: {value!r}")
    return value


def parse_line(text: str, line: int, where: str) -> Record:
    """Validate one JSON line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: malformed JSON ({err.msg})") from err
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object")
    problem = _field(obj, "problem", str, where)
    if problem not in PROBLEMS:
        raise InputError(f"{where}: unknown problem {problem!r}; choose one of {PROBLEMS}")
    n = _field(obj, "n", int, where)
    if n < 2:
        raise InputError(f"{where}: field 'n' must be at least 2, got {n}")
    directed = obj.get("directed", False)
    if not isinstance(directed, bool):
        raise InputError(f"{where}: field 'directed' must be true or false, got {directed!r}")
    edges = _field(obj, "edges", list, where)
    for e in edges:
        ok = isinstance(e, list) and len(e) == 2 and all(type(v) is int for v in e)
        if not ok:
            raise InputError(f"{where}: field 'edges' has a malformed edge {e!r}")
        if not (0 <= e[0] < n and 0 <= e[1] < n):
            raise InputError(f"{where}: edge {e} has a vertex outside [0, {n})")
        if e[0] == e[1]:
            raise InputError(f"{where}: edge {e} is a self-loop")
    s, t = _field(obj, "s", int, where), _field(obj, "t", int, where)
    for name, v in (("s", s), ("t", t)):
        if not 0 <= v < n:
            raise InputError(f"{where}: field {name!r}={v} is outside [0, {n})")
    if s == t:
        raise InputError(f"{where}: fields 's' and 't' are both {s}; a query needs s != t")
    edge_tuples = [(e[0], e[1]) for e in edges]
    return Record(line, problem, n, directed, edge_tuples, s, t, obj.get("answer"))


def read_jsonl(path: str | Path) -> list[Record]:
    """Every line of a JSONL file, validated (blank lines skipped)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise InputError(f"cannot read {path}: not UTF-8 text") from err
    return [
        parse_line(line, number, f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


def group(records_: list[Record]) -> list[tuple[list[Record], Instances]]:
    """Batch records by (problem, n, directed) and solve each batch at once."""
    groups: dict[tuple[str, int, bool], list[Record]] = {}
    for r in records_:
        groups.setdefault((r.problem, r.n, r.directed), []).append(r)
    out = []
    for (problem, n, directed), rs in groups.items():
        graphs = GraphBatch.from_edge_lists(n, [r.edges for r in rs], directed)
        s = np.array([r.s for r in rs], dtype=np.int64)
        t = np.array([r.t for r in rs], dtype=np.int64)
        out.append((rs, Instances(problem, graphs, s, t)))
    return out
