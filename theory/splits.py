"""Frozen split specs in the CLRS manner: (problem, n, count, seed, family), nothing else.

A spec fully determines its instances: the same spec gives the same bytes on any machine
(:func:`fingerprint` is the check). :func:`standard_splits` gives train / val / test at one
size and an out-of-distribution test at a larger size, each with its own seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from theory import encoding
from theory.errors import InputError
from theory.generators import FAMILIES, sample
from theory.problems import Instances, check_problem


@dataclass(frozen=True)
class SplitSpec:
    """One split: ``count`` instances of ``problem`` on ``n`` vertices from ``family``."""

    problem: str
    n: int
    count: int
    seed: int
    family: str = "balanced"
    directed: bool = False

    def __post_init__(self) -> None:
        check_problem(self.problem)
        if self.family not in FAMILIES:
            raise InputError(f"unknown family {self.family!r}; choose one of {FAMILIES}")
        for name in ("n", "count", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InputError(f"{name} must be a non-negative integer, got {value!r}")
        if self.n < 3:
            raise InputError(f"n must be at least 3, got {self.n}")

    def make(self) -> Instances:
        """Generate the split (deterministic in the spec)."""
        rng = np.random.default_rng(self.seed)
        return sample(self.problem, self.family, rng, self.n, self.count, self.directed)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SplitSpec:
        try:
            return cls(**json.loads(text))
        except (TypeError, json.JSONDecodeError) as err:
            raise InputError(f"not a split spec: {err}") from err


def standard_splits(
    problem: str,
    n: int,
    train: int = 100_000,
    test: int = 1_000,
    seed: int = 0,
    ood_n: int | None = None,
    family: str = "balanced",
) -> dict[str, SplitSpec]:
    """train / val / test at size n and test_ood at ``ood_n`` (default 2n), seeds 4·seed + k."""
    base = 4 * seed
    return {
        "train": SplitSpec(problem, n, train, base + 1, family),
        "val": SplitSpec(problem, n, test, base + 2, family),
        "test": SplitSpec(problem, n, test, base + 3, family),
        "test_ood": SplitSpec(problem, ood_n or 2 * n, test, base + 4, family),
    }


def fingerprint(instances: Instances) -> str:
    """sha256 of the canonical encoding and labels: equal iff the split is byte-identical."""
    digest = hashlib.sha256()
    digest.update(encoding.encode(instances, encoding.max_length(instances.n)).tobytes())
    digest.update(instances.labels().astype("<i8").tobytes())
    return digest.hexdigest()
