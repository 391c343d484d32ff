"""Sweeps: a frozen config that expands to runs, and the sweeps of the paper's synthetic section.

A :class:`SweepConfig` is a task, settings shared by every run (``fixed``), named axes whose
Cartesian product (with the seeds) gives the runs, and optional :class:`Grid` s: sub-grids
with their own fixed settings and axes (e.g. "dense widths" and "MoE experts at a fixed
active width" in one sweep). The runs of a sweep are the union over its grids (one grid,
empty, if none is given) of::

    fixed | grid.fixed | one value per axis (sweep axes, then grid axes) | {"seed": s}

plus ``"task"`` and ``"grid"``. A run's id is the first 16 hex digits of the SHA-256 of its
full config as sorted-key JSON (:func:`run_id`), so the same run has the same id in any sweep,
on any machine, and a restarted runner recognises what it already did.

:func:`get_sweep` returns the catalogue's sweeps (``reasoning``, ``depth``, ``memorization``,
``threshold``, ``learnability``, ``selftest``) at a scale: ``tiny`` (CI, minutes on CPU),
``small`` (CPU, under an hour on two shared cores) and ``paper`` (GPU; defined, not run on CPU).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from theory.bounds import matched_moe_width
from theory.errors import InputError

SCALES = ("tiny", "small", "paper")
TASKS = ("length2", "graph", "phonebook", "threshold", "selftest")
_RESERVED = ("task", "grid", "seed")
Scalar = int | float | str | bool | None


def _check_value(where: str, value: Any) -> None:
    """Run settings are JSON scalars or (nested) lists of them, so the hash is stable."""
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_value(where, v)
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise InputError(f"{where}: {value!r} is not a JSON scalar or list")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where}: {value!r} is not finite")


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, (list, tuple)) else value


def _items(where: str, mapping: Mapping[str, Any] | tuple) -> tuple[tuple[str, Any], ...]:
    pairs = tuple(mapping.items()) if isinstance(mapping, Mapping) else tuple(mapping)
    out = []
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str) or not pair[0]:
            raise InputError(f"{where}: expected (name, value) pairs, got {pair!r}")
        _check_value(f"{where}.{pair[0]}", pair[1])
        out.append((pair[0], _freeze(pair[1])))
    return tuple(sorted(out))


def _axes(where: str, axes: Mapping[str, Any] | tuple) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    pairs = tuple(axes.items()) if isinstance(axes, Mapping) else tuple(axes)
    out = []
    for pair in pairs:
        if len(pair) != 2 or not isinstance(pair[0], str) or not pair[0]:
            raise InputError(f"{where}: expected (name, values) pairs, got {pair!r}")
        name, values = pair
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
            raise InputError(f"{where}.{name}: an axis is a list of values, got {values!r}")
        if not values:
            raise InputError(f"{where}.{name}: an axis needs at least one value")
        for v in values:
            _check_value(f"{where}.{name}", v)
        frozen = tuple(_freeze(v) for v in values)
        if len(set(map(json.dumps, map(_thaw, frozen)))) != len(frozen):
            raise InputError(f"{where}.{name}: repeated values {list(values)!r}")
        out.append((name, frozen))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise InputError(f"{where}: repeated axis names {names}")
    return tuple(sorted(out))  # canonical: the expansion order is the names' order


@dataclass(frozen=True)
class Grid:
    """One sub-grid of a sweep: a label, settings of its own and axes of its own."""

    label: str
    fixed: Any = ()  # a mapping or (name, value) pairs; stored as sorted pairs
    axes: Any = ()  # a mapping or (name, values) pairs; stored as sorted pairs

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise InputError(f"Grid: label must be a non-empty string, got {self.label!r}")
        object.__setattr__(self, "fixed", _items(f"grid {self.label} fixed", self.fixed))
        object.__setattr__(self, "axes", _axes(f"grid {self.label} axes", self.axes))
        clash = {n for n, _ in self.fixed} & {n for n, _ in self.axes}
        if clash:
            raise InputError(f"grid {self.label}: {sorted(clash)} both fixed and an axis")

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "fixed": {k: _thaw(v) for k, v in self.fixed},
            "axes": {k: [_thaw(v) for v in vs] for k, vs in self.axes},
        }


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: frozen, validated on construction, JSON round trip (:meth:`to_json`)."""

    name: str
    scale: str
    task: str
    fixed: Any = ()  # a mapping or (name, value) pairs; stored as sorted pairs
    axes: Any = ()  # a mapping or (name, values) pairs; stored as sorted pairs
    seeds: tuple[int, ...] = (0,)
    grids: tuple[Grid, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise InputError(f"SweepConfig {self.name!r}: {msg}")

        if not isinstance(self.name, str) or not self.name.replace("_", "").isalnum():
            bad("name must be letters, digits and underscores (it names a folder)")
        if self.scale not in SCALES:
            bad(f"scale must be one of {SCALES}, got {self.scale!r}")
        if self.task not in TASKS:
            bad(f"task must be one of {TASKS}, got {self.task!r}")
        object.__setattr__(self, "fixed", _items("fixed", self.fixed))
        object.__setattr__(self, "axes", _axes("axes", self.axes))
        seeds = tuple(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            bad(f"seeds must be non-negative integers, at least one, got {self.seeds!r}")
        if len(set(seeds)) != len(seeds):
            bad(f"repeated seeds {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        grids = tuple(g if isinstance(g, Grid) else Grid(**g) for g in self.grids)
        if len({g.label for g in grids}) != len(grids):
            bad("grid labels must be distinct")
        object.__setattr__(self, "grids", grids)
        names = [n for n, _ in self.fixed] + [n for n, _ in self.axes]
        if len(set(names)) != len(names):
            bad(f"{sorted({n for n in names if names.count(n) > 1})} both fixed and an axis")
        for name in names + [n for g in grids for n, _ in (*g.fixed, *g.axes)]:
            if name in _RESERVED:
                bad(f"{name!r} is set by the sweep itself, not by fixed/axes")
        for g in grids:
            clash = {n for n, _ in self.axes} & {n for n, _ in (*g.fixed, *g.axes)}
            if clash:
                bad(f"grid {g.label} redefines the sweep axes {sorted(clash)}")

    # -- expansion -------------------------------------------------------------------------
    def runs(self) -> list[dict[str, Any]]:
        """Every run's full config, in a deterministic order; ids are distinct."""
        out = list(self._iter_runs())
        ids = [run_id(r) for r in out]
        if len(set(ids)) != len(ids):
            raise InputError(f"SweepConfig {self.name!r}: two runs have the same config")
        return out

    def _iter_runs(self) -> Iterator[dict[str, Any]]:
        for grid in self.grids or (Grid("all"),):
            axes = (*self.axes, *grid.axes)
            names = [n for n, _ in axes]
            for values in itertools.product(*(vs for _, vs in axes)):
                for seed in self.seeds:
                    config: dict[str, Any] = {"task": self.task, "grid": grid.label}
                    config.update({k: _thaw(v) for k, v in self.fixed})
                    config.update({k: _thaw(v) for k, v in grid.fixed})
                    config.update({k: _thaw(v) for k, v in zip(names, values, strict=True)})
                    config["seed"] = seed
                    yield config

    def __len__(self) -> int:
        return len(self.runs())

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scale": self.scale,
            "task": self.task,
            "fixed": {k: _thaw(v) for k, v in self.fixed},
            "axes": {k: [_thaw(v) for v in vs] for k, vs in self.axes},
            "seeds": list(self.seeds),
            "grids": [g.to_dict() for g in self.grids],
            "description": self.description,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SweepConfig:
        known = {"name", "scale", "task", "fixed", "axes", "seeds", "grids", "description"}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"SweepConfig: unknown fields {sorted(unknown)}")
        d = dict(d)
        d["seeds"] = tuple(d.get("seeds", (0,)))
        d["grids"] = tuple(Grid(**g) for g in d.get("grids", ()))
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> SweepConfig:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"SweepConfig: not JSON ({err.msg})") from err
        if not isinstance(d, dict):
            raise InputError("SweepConfig: expected a JSON object")
        return cls.from_dict(d)


def run_id(config: Mapping[str, Any]) -> str:
    """A run's identity: SHA-256 of its full config as sorted-key JSON, 16 hex digits."""
    text = json.dumps(dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# == the catalogue =========================================================================

# What each scale spends. Held-out / eval sizes are small on CPU; on a GPU the paper scale
# uses the probes' budgets (batch 1024, a few thousand steps; research/probes.md).
_LENGTH2_TRAIN = {
    "tiny": {"steps": 150, "batch": 64, "lr": 3e-3, "eval_size": 512, "eval_interval": 50},
    "small": {"steps": 600, "batch": 128, "lr": 3e-3, "eval_size": 1024, "eval_interval": 100},
    "paper": {"steps": 3000, "batch": 1024, "lr": 1e-3, "eval_size": 8192, "eval_interval": 250},
}
# On a GPU a run that has solved the task stops (its last held-out accuracy >= this), so the
# paper scale spends its budget on the runs still learning.
_PAPER_TARGET = 0.99


def _reasoning(scale: str) -> SweepConfig:
    """Length-2 path, 1 and 2 layers: dense widths; MoE K at a fixed active width, top-1/2;
    and MoE of the width with the same total parameters as the widest dense model."""
    # |V| = 16 does not learn in CPU budgets (research/probes.md: batch 1024 on a GPU); the
    # small scale uses |V| = 8, where 2 layers learn within ~1k steps of batch 256
    vertices = {"tiny": [6], "small": [8], "paper": [16, 32]}[scale]
    widths = {"tiny": [8, 16], "small": [8, 16, 32], "paper": [16, 32, 64, 128]}[scale]
    experts = {"tiny": [2, 4], "small": [2, 4, 8], "paper": [2, 4, 8, 16, 32, 64]}[scale]
    active = {"tiny": 8, "small": 16, "paper": 32}[scale]  # the MoE's (active) width
    seeds = {"tiny": (0,), "small": (0, 1), "paper": (0, 1, 2)}[scale]
    heads = 2
    shared = {"layers": [1, 2], "vertices": vertices}
    grids = [
        Grid("dense", fixed={"experts": 1, "top_k": 1}, axes={**shared, "width": widths}),
        Grid(
            "moe",
            fixed={"width": active},
            axes={**shared, "experts": experts, "top_k": [1, 2]},
        ),
    ]
    # the parameter-matched MoE: same total parameters as the widest dense model
    dense_ref = widths[-1]
    for layers in (1, 2):
        for n in vertices:
            for count in experts:
                match = matched_moe_width(n, dense_ref, count, heads=heads, layers=layers)
                if match.width < heads:
                    continue
                grids.append(
                    Grid(
                        f"matched_L{layers}_V{n}_K{count}",
                        fixed={
                            "layers": layers,
                            "vertices": n,
                            "experts": count,
                            "top_k": 1,
                            "width": match.width,
                            "matched_dense_width": dense_ref,
                        },
                    )
                )
    return SweepConfig(
        name="reasoning",
        scale=scale,
        task="length2",
        fixed={
            "heads": heads,
            "threads": 1,
            **_LENGTH2_TRAIN[scale],
            **({"target_accuracy": _PAPER_TARGET} if scale == "paper" else {}),
        },
        seeds=seeds,
        grids=tuple(grids),
        description="balanced length-2 path: dense widths, MoE experts at fixed active "
        f"width {active} (top-1/2), and MoE parameter-matched to dense width {dense_ref}",
    )


def _memorization(scale: str) -> SweepConfig:
    """Closed-book phone book: entries × K at a fixed active width."""
    entries = {"tiny": [64, 256], "small": [2048, 8192], "paper": [4096, 16384, 65536]}
    experts = {"tiny": [1, 4], "small": [1, 2, 4, 8], "paper": [1, 2, 4, 8, 16, 32, 64]}
    train = {
        "tiny": {"steps": 200, "batch": 128, "lr": 1e-2, "eval_interval": 50},
        "small": {"steps": 1000, "batch": 512, "lr": 1e-2, "eval_interval": 250},
        "paper": {"steps": 6000, "batch": 1024, "lr": 3e-3, "eval_interval": 1000},
    }[scale]
    return SweepConfig(
        name="memorization",
        scale=scale,
        task="phonebook",
        fixed={
            "width": 16,
            "mlp_hidden": 128,
            "value_bits": 8,
            "top_k": 1,
            "threads": 1,
            **train,
        },
        axes={"entries": entries[scale], "experts": experts[scale]},
        seeds={"tiny": (0,), "small": (0, 1), "paper": (0, 1, 2)}[scale],
        description="closed-book phone book (name token -> number), exact-match recall of "
        "the stored entries, K experts of fixed hidden size at fixed width",
    )


def _threshold(scale: str) -> SweepConfig:
    """The smallest dense width reaching the target on length-2 path, per |V|."""
    vertices = {"tiny": [5, 6], "small": [5, 6, 7, 8], "paper": [8, 12, 16, 24, 32]}[scale]
    widths = {"tiny": [4, 8], "small": [8, 16, 32], "paper": [8, 16, 32, 64, 128]}
    train = dict(_LENGTH2_TRAIN[scale])
    if scale == "small":  # long enough for |V| = 8 at width 32 (probe: 94% at 1250 steps)
        train.update(steps=1500, batch=256, eval_interval=250)
    return SweepConfig(
        name="threshold",
        scale=scale,
        task="threshold",
        fixed={
            "layers": 2,
            "heads": 2,
            "experts": 1,
            "top_k": 1,
            "target": 0.95,
            "widths": widths[scale],
            "threads": 1,
            **train,
        },
        axes={"vertices": vertices},
        seeds={"tiny": (0,), "small": (0,), "paper": (0, 1, 2)}[scale],
        description="empirical width threshold: the smallest dense width (of `widths`, "
        "tried in increasing order) whose held-out accuracy reaches `target`",
    )


def _learnability(scale: str) -> SweepConfig:
    """Can this toolkit's dense model learn length-2 path? 2 layers to a target (the smallest
    width that reaches it), 1 layer pushed with longer runs, lr, heads and a curriculum."""
    vertices = {"tiny": [6], "small": [8], "paper": [16, 32]}[scale]
    w2 = {"tiny": [8, 16], "small": [8, 16, 32], "paper": [16, 32, 64, 128]}[scale]
    w1 = {"tiny": [16], "small": [16, 32, 64], "paper": [32, 64, 128, 256]}[scale]
    steps = {"tiny": (150, 300), "small": (1500, 3000), "paper": (6000, 8000)}[scale]
    probe_n = vertices[0]  # the lr / heads / curriculum variants, at the smallest |V|
    probe_w = w1[len(w1) // 2]
    one = {"layers": 1, "steps": steps[1]}
    # the largest |V| with the two widest 2-layer models, twice the steps, with and without
    # a curriculum from half the vertices (at |V| = 32 every width stalled at 56-67% in 6k)
    hard = {"layers": 2, "steps": 2 * steps[0], "vertices": vertices[-1]}
    grids = [
        Grid(
            "two_layer",
            fixed={"layers": 2, "steps": steps[0]},
            axes={"vertices": vertices, "width": w2},
        ),
        Grid("two_layer_long", fixed=hard, axes={"width": w2[-2:]}),
        Grid(
            "two_layer_curriculum",
            fixed={**hard, "curriculum": max(3, vertices[-1] // 2)},
            axes={"width": w2[-2:]},
        ),
        Grid("one_layer", fixed=one, axes={"vertices": vertices, "width": w1}),
        Grid(
            "one_layer_lr",
            fixed={**one, "vertices": probe_n, "width": probe_w},
            axes={"lr": [3e-4, 3e-3]},
        ),
        Grid(
            "one_layer_heads",
            fixed={**one, "vertices": probe_n, "width": probe_w},
            axes={"heads": [1, 8]},
        ),
        Grid(
            "one_layer_curriculum",
            fixed={**one, "width": probe_w, "curriculum": 5},
            axes={"vertices": vertices},
        ),
    ]
    if scale == "small":
        # 1 layer at |V| = 8 and 12 given the instances a paper-scale run sees (12k x 512 =
        # 6.1M; 6k x 1024 on a GPU) and the 98% target: the smallest 1-layer width
        # that learns, where a CPU can afford it (the construction needs 2|V| + 4 = 20, 28)
        grids.append(
            Grid(
                "one_layer_budget",
                fixed={
                    "layers": 1,
                    "steps": 12000,
                    "batch": 512,
                    "eval_interval": 500,
                    "eval_size": 4096,
                    "target_accuracy": 0.98,
                },
                axes={"vertices": [8, 12], "width": [8, 16, 32, 64, 128]},
            )
        )
    train = {k: v for k, v in _LENGTH2_TRAIN[scale].items() if k != "steps"}
    return SweepConfig(
        name="learnability",
        scale=scale,
        task="length2",
        fixed={
            "experts": 1,
            "top_k": 1,
            "threads": 1,
            "target_accuracy": 0.98 if scale == "paper" else 0.95,
            "heads": 2,
            **train,
        },
        grids=tuple(grids),  # a grid's own settings (lr, heads) override the shared ones
        seeds=(0,),
        description="dense length-2 path learnability: 2 layers (smallest width reaching the "
        "target) and 1 layer (best accuracy per width; lr, heads and curriculum variants)",
    )


def _depth(scale: str) -> SweepConfig:
    """Connectivity and shortest path with deeper models: dense widths and MoE experts at a
    fixed active width, per depth. Connectivity and distances are the problems that want
    depth (the known transformer constructions for them use O(log n) layers); the question is
    the one asked of length-2 path: at a fixed active width, do more experts help?"""
    vertices = {"tiny": [6], "small": [8], "paper": [16, 32]}[scale]
    layers = {"tiny": [1, 2], "small": [1, 2, 4], "paper": [2, 4]}[scale]
    widths = {"tiny": [8], "small": [16, 32], "paper": [32, 128]}[scale]
    experts = {"tiny": [2], "small": [4, 16], "paper": [4, 16, 64]}[scale]
    active = {"tiny": 8, "small": 16, "paper": 32}[scale]
    train = dict(_LENGTH2_TRAIN[scale])
    if scale == "small":  # probe: |V| = 8, width 32, 1000 steps: 83-90% connectivity
        train.update(steps=1000, eval_interval=250)
    shared = {"problem": ["connectivity", "shortest_path"], "layers": layers, "vertices": vertices}
    return SweepConfig(
        name="depth",
        scale=scale,
        task="graph",
        fixed={
            "heads": 2,
            "threads": 1,
            **train,
            **({"target_accuracy": _PAPER_TARGET} if scale == "paper" else {}),
        },
        grids=(
            Grid("dense", fixed={"experts": 1, "top_k": 1}, axes={**shared, "width": widths}),
            Grid("moe", fixed={"width": active, "top_k": 1}, axes={**shared, "experts": experts}),
        ),
        seeds={"tiny": (0,), "small": (0, 1), "paper": (0, 1, 2)}[scale],
        description="connectivity and shortest path (exact distance), 1 to 4 layers: dense "
        f"widths, and MoE experts at fixed active width {active} (top-1)",
    )


def _selftest(scale: str) -> SweepConfig:
    """No training: each run sleeps and returns a number (runner tests, dry runs)."""
    return SweepConfig(
        name="selftest",
        scale=scale,
        task="selftest",
        fixed={"sleep": 0.05},
        axes={"value": list(range({"tiny": 6, "small": 20, "paper": 100}[scale]))},
    )


_CATALOGUE = {
    "reasoning": _reasoning,
    "depth": _depth,
    "learnability": _learnability,
    "memorization": _memorization,
    "threshold": _threshold,
    "selftest": _selftest,
}
SWEEP_NAMES = tuple(_CATALOGUE)


def get_sweep(name: str, scale: str) -> SweepConfig:
    """The catalogue's sweep ``name`` at ``scale``."""
    if name not in _CATALOGUE:
        raise InputError(f"unknown sweep {name!r}; one of {', '.join(_CATALOGUE)}")
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}; one of {', '.join(SCALES)}")
    return _CATALOGUE[name](scale)
