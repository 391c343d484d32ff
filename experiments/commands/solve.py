"""``parrots solve``: re-solve a JSONL file and compare with its stored answers."""

from __future__ import annotations

import argparse
import json

from theory import jsonl
from theory.problems import DECISION_PROBLEMS
from theory.solvers import is_shortest_path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        help="re-solve instances and check stored answers",
        description="Validate every line of FILE, answer it with the exact batched solver and "
        "report agreement with the stored answers. Exit 1 if any disagree.",
    )
    p.add_argument("file", metavar="FILE", help="a .jsonl file as written by `parrots generate`")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=run)


def _agrees(problem: str, stored: object, instances, b: int) -> bool:
    if problem in DECISION_PROBLEMS:
        return isinstance(stored, bool) and stored == bool(instances.answer[b])
    if not isinstance(stored, dict):
        return False
    distance = int(instances.answer.distance[b])
    if stored.get("distance") != distance:
        return False
    path = stored.get("path")
    if path is None:  # a distance alone is an answer too
        return True
    s, t = int(instances.s[b]), int(instances.t[b])
    return isinstance(path, list) and is_shortest_path(instances.graphs, b, path, s, t, distance)


def run(args: argparse.Namespace) -> int:
    records = jsonl.read_jsonl(args.file)
    checked, disagree = 0, []
    for group, instances in jsonl.group(records):
        for b, record in enumerate(group):
            if record.answer is None:
                continue
            checked += 1
            if not _agrees(record.problem, record.answer, instances, b):
                disagree.append(record.line)
    disagree.sort()
    report = {
        "instances": len(records),
        "with_answers": checked,
        "agree": checked - len(disagree),
        "agree_fraction": (checked - len(disagree)) / checked if checked else None,
        "disagreeing_lines": disagree[:20],
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{report['instances']} instances, {checked} with stored answers, "
            f"{report['agree']} agree"
        )
        if disagree:
            print("disagreeing lines: " + ", ".join(map(str, disagree[:20])))
    return 1 if disagree else 0
