"""The graph problems, and a batch of instances of one of them.

=================  =========================================================  ==============
problem            question for query (s, t), s != t                           label
=================  =========================================================  ==============
``length2``        is there w with s -> w and w -> t?  (length-2 path)         0 / 1
``connectivity``   is t reachable from s?  (same component if undirected)      0 / 1
``shortest_path``  distance from s to t, and one shortest path                 d, 0 if none
=================  =========================================================  ==============

All three have directed variants (``GraphBatch.directed``). The shortest-path label is the
distance, with 0 standing for "unreachable" (a real distance is at least 1 because s != t),
so it has n classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from theory import solvers
from theory.errors import InputError
from theory.graphs import GraphBatch, concat

PROBLEMS = ("length2", "connectivity", "shortest_path")
DECISION_PROBLEMS = ("length2", "connectivity")


def check_problem(problem: str) -> str:
    if problem not in PROBLEMS:
        raise InputError(f"unknown problem {problem!r}; choose one of {', '.join(PROBLEMS)}")
    return problem


def num_classes(problem: str, n: int) -> int:
    """Number of label values: 2 for decision problems, n for shortest-path distance."""
    return 2 if check_problem(problem) in DECISION_PROBLEMS else n


def solve(problem: str, graphs: GraphBatch, s: np.ndarray, t: np.ndarray) -> Any:
    """The exact batched answer: bool (B,) for decision problems, ShortestPaths otherwise."""
    fn = {
        "length2": solvers.length2_path,
        "connectivity": solvers.connectivity,
        "shortest_path": solvers.shortest_path,
    }[check_problem(problem)]
    return fn(graphs, s, t)


@dataclass(frozen=True, eq=False)
class Instances:
    """B instances of one problem: graph b with query (s[b], t[b]) and its exact answer."""

    problem: str
    graphs: GraphBatch
    s: np.ndarray
    t: np.ndarray
    answer: Any = field(default=None)

    def __post_init__(self) -> None:
        check_problem(self.problem)
        object.__setattr__(self, "s", np.asarray(self.s, dtype=np.int64))
        object.__setattr__(self, "t", np.asarray(self.t, dtype=np.int64))
        if self.answer is None:
            object.__setattr__(self, "answer", solve(self.problem, self.graphs, self.s, self.t))

    @property
    def n(self) -> int:
        return self.graphs.n

    def __len__(self) -> int:
        return len(self.graphs)

    def labels(self) -> np.ndarray:
        """Integer class labels (B,): 0/1, or the distance with 0 for unreachable."""
        if self.problem in DECISION_PROBLEMS:
            return np.asarray(self.answer).astype(np.int64)
        return np.maximum(self.answer.distance, 0)

    def __getitem__(self, index: slice | np.ndarray) -> Instances:
        answer: Any
        if self.problem in DECISION_PROBLEMS:
            answer = np.asarray(self.answer)[index]
        else:
            answer = solvers.ShortestPaths(self.answer.distance[index], self.answer.paths[index])
        return Instances(self.problem, self.graphs[index], self.s[index], self.t[index], answer)


def concat_instances(parts: list[Instances]) -> Instances:
    """Concatenate batches of the same problem, n and directedness."""
    problem = parts[0].problem
    if any(p.problem != problem for p in parts):
        raise InputError("can only concatenate instances of one problem")
    graphs = concat([p.graphs for p in parts])
    s = np.concatenate([p.s for p in parts])
    t = np.concatenate([p.t for p in parts])
    if problem in DECISION_PROBLEMS:
        answer: Any = np.concatenate([np.asarray(p.answer) for p in parts])
    else:
        answer = solvers.ShortestPaths(
            np.concatenate([p.answer.distance for p in parts]),
            np.concatenate([p.answer.paths for p in parts]),
        )
    return Instances(problem, graphs, s, t, answer)
