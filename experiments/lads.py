"""LADS and its baselines on one :class:`~models.lads.EmbeddingTask`, over seeds and sweeps.

:func:`run_methods` trains and scores every method on one task with one training seed and
returns ``{"methods": {name: domain metrics}, "diagnostics": {name: ...}}``:

- ``zs_generic`` / ``zs_domain``: zero-shot with the generic class prompts / the mean of the
  domain-specific prompts of every domain (the official "domain-aware templates");
- ``lp``: linear probe on the training domain; ``lp_zs_init``: the same, initialised from the
  generic zero-shot weights; ``lp_zs_ensemble``: mean softmax of ``lp`` and ``zs_domain``;
- ``addition``: probe on real + normalise(x + λ·Δt) for every unseen domain;
- ``lads_alpha{α}``: probe on real + normalise(f_j(x)) for each α in the config;
  ``lads_zs_ensemble``: the α = 0.5 LADS probe ensembled with ``zs_domain``;
- bias setting only, ``lads_alpha{α}_no_domain_labels``: every training example treated as
  domain 0 (the official default ``USE_DOM_GT=False``, lads.md §1.9), as an ablation.

Diagnostics of each augmentation, measured against the real test embeddings (never used for
training): ``domain_shift`` = mean⟨aug − x, μ_j − μ_0⟩ / |μ_j − μ_0|², with μ_m the mean test
embedding of domain m (1 = moved by the whole mean domain gap, 0 = not moved);
``nn_domain`` / ``nn_class``: the share of augmented embeddings whose nearest real test
embedding (cosine) lies in the intended domain / has the same class (the official
``get_nn_metrics``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from constructions.joint_space import JointSpace, JointSpaceConfig
from models.lads import (
    AugmenterConfig,
    EmbeddingTask,
    ProbeConfig,
    addition_augment,
    augment,
    bias_directions,
    domain_metrics,
    ensemble_probs,
    lads_loss,
    probe_logits,
    text_directions,
    train_augmenter,
    train_probe,
    zero_shot_logits,
    zero_shot_weights,
)
from theory.errors import InputError

DEFAULT_RHOS = (0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0)
DEFAULT_ALPHAS = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class LadsRunConfig:
    """How LADS and the baselines are trained; ``seed`` seeds every network and batch order."""

    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    hidden: int = 64
    aug_epochs: int = 50
    aug_lr: float = 0.005
    aug_weight_decay: float = 0.05
    probe_epochs: int = 200
    probe_lr: float = 0.01
    probe_weight_decay: float = 0.05
    addition_lambda: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.alphas, tuple) or not self.alphas:
            raise InputError(f"alphas must be a non-empty tuple, got {self.alphas!r}")
        for alpha in self.alphas:  # AugmenterConfig validates alpha, hidden, epochs, lr, seed
            self.augmenter(alpha, 0)
        self.probe()
        if not math.isfinite(self.addition_lambda) or self.addition_lambda < 0:
            raise InputError(f"addition_lambda must be ≥ 0, got {self.addition_lambda!r}")

    def augmenter(self, alpha: float, network: int) -> AugmenterConfig:
        return AugmenterConfig(
            alpha=alpha, hidden=self.hidden, epochs=self.aug_epochs, lr=self.aug_lr,
            weight_decay=self.aug_weight_decay, seed=1000 * self.seed + network,
        )  # fmt: skip

    def probe(self, offset: int = 0) -> ProbeConfig:
        return ProbeConfig(
            epochs=self.probe_epochs, lr=self.probe_lr, weight_decay=self.probe_weight_decay,
            seed=1000 * self.seed + 500 + offset,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["alphas"] = list(self.alphas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LadsRunConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown LadsRunConfig fields: {sorted(unknown)}")
        data = dict(data)
        if "alphas" in data:
            data["alphas"] = tuple(data["alphas"])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LadsRunConfig:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as err:
            raise InputError(f"not a LadsRunConfig: {err}") from err


def alpha_key(alpha: float) -> str:
    return f"lads_alpha{alpha:g}"


@dataclass
class _Augmentation:
    x: np.ndarray  # the augmented embeddings, all unseen domains stacked
    y: np.ndarray
    source: np.ndarray  # the real embedding each one came from
    target_domain: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def _diagnostics(task: EmbeddingTask, aug: _Augmentation) -> dict[str, Any]:
    tx = task.test_x / np.linalg.norm(task.test_x, axis=-1, keepdims=True)
    mu = [tx[task.test_d == m].mean(axis=0) for m in range(task.n_domains)]
    shift = []
    for j in np.unique(aug.target_domain):
        sel = aug.target_domain == j
        src = int(1 - j) if task.bias else 0
        gap = mu[j] - mu[src]
        shift.append(float(np.mean((aug.x[sel] - aug.source[sel]) @ gap) / (gap @ gap)))
    nearest = np.argmax(aug.x @ tx.T, axis=1)
    return {
        "domain_shift": float(np.mean(shift)),
        "nn_domain": float(np.mean(task.test_d[nearest] == aug.target_domain)),
        "nn_class": float(np.mean(task.test_y[nearest] == aug.y)),
        **aug.extra,
    }


def _source_target_pairs(task: EmbeddingTask, use_domain_labels: bool = True):
    """(network index, example domains, target domains, per-example text directions) for
    the training and validation sets."""
    if task.bias:
        d_tr = task.train_d if use_domain_labels else np.zeros_like(task.train_d)
        d_va = task.val_d if use_domain_labels else np.zeros_like(task.val_d)
        yield (
            0,
            (bias_directions(task.domain_prompts, task.train_y, d_tr), 1 - d_tr),
            bias_directions(task.domain_prompts, task.val_y, d_va),
        )
        return
    for j in range(1, task.n_domains):
        dirs = text_directions(task.domain_prompts, 0, j)
        yield j, (dirs[task.train_y], np.full_like(task.train_y, j)), dirs[task.val_y]


def _addition(task: EmbeddingTask, lam: float) -> _Augmentation:
    p = task.domain_prompts / np.linalg.norm(task.domain_prompts, axis=-1, keepdims=True)
    xs, targets = [], []
    if task.bias:
        d = task.train_d
        xs.append(addition_augment(task.train_x, p[1 - d, task.train_y] - p[d, task.train_y], lam))
        targets.append(1 - d)
    else:
        for j in range(1, task.n_domains):
            xs.append(addition_augment(task.train_x, (p[j] - p[0])[task.train_y], lam))
            targets.append(np.full_like(task.train_y, j))
    reps = len(xs)
    return _Augmentation(
        np.concatenate(xs), np.tile(task.train_y, reps), np.tile(task.train_x, (reps, 1)),
        np.concatenate(targets),
    )  # fmt: skip


def _lads(
    task: EmbeddingTask, cfg: LadsRunConfig, alpha: float, use_domain_labels: bool = True
) -> _Augmentation:
    import torch

    xs: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    extra: dict[str, list[float]] = {
        "best_epoch": [], "val_domain_alignment": [], "val_class_consistency": []
    }  # fmt: skip
    for j, (dirs, target), val_dirs in _source_target_pairs(task, use_domain_labels):
        trained = train_augmenter(
            task.train_x, task.train_y, dirs, task.val_x, task.val_y, val_dirs,
            task.class_prompts, cfg.augmenter(alpha, j),
        )  # fmt: skip
        xs.append(augment(trained.network, task.train_x))
        targets.append(target)
        with torch.no_grad():
            vx = torch.as_tensor(task.val_x, dtype=torch.float32)
            parts = lads_loss(
                vx, trained.network(vx), torch.as_tensor(val_dirs, dtype=torch.float32),
                torch.as_tensor(task.class_prompts, dtype=torch.float32),
                torch.as_tensor(task.val_y), alpha,
            )  # fmt: skip
        extra["best_epoch"].append(trained.best_epoch)
        extra["val_domain_alignment"].append(float(parts.domain_alignment))
        extra["val_class_consistency"].append(float(parts.class_consistency))
    reps = len(xs)
    return _Augmentation(
        np.concatenate(xs), np.tile(task.train_y, reps), np.tile(task.train_x, (reps, 1)),
        np.concatenate(targets), extra,
    )  # fmt: skip


def run_methods(task: EmbeddingTask, cfg: LadsRunConfig) -> dict[str, Any]:
    """Every method on one task with one training seed (see the module docstring)."""
    k, n_dom = task.n_classes, task.n_domains

    def score(logits_or_probs: np.ndarray) -> dict[str, Any]:
        pred = logits_or_probs.argmax(axis=-1)
        return domain_metrics(pred, task.test_y, task.test_d, n_dom, k)

    def probe_on(x: np.ndarray, y: np.ndarray, offset: int, init: np.ndarray | None = None):
        return train_probe(x, y, task.val_x, task.val_y, k, cfg.probe(offset), init)

    methods: dict[str, Any] = {}
    diagnostics: dict[str, Any] = {}
    zs_generic = zero_shot_weights(task.class_prompts)
    zs_domain = zero_shot_weights(task.domain_prompts)
    zs_test = zero_shot_logits(task.test_x, zs_domain)
    methods["zs_generic"] = score(zero_shot_logits(task.test_x, zs_generic))
    methods["zs_domain"] = score(zs_test)
    lp = probe_on(task.train_x, task.train_y, 0)
    methods["lp"] = score(probe_logits(lp, task.test_x))
    methods["lp_zs_init"] = score(
        probe_logits(probe_on(task.train_x, task.train_y, 0, zs_generic), task.test_x)
    )
    methods["lp_zs_ensemble"] = score(ensemble_probs(probe_logits(lp, task.test_x), zs_test))

    def with_augmentation(name: str, aug: _Augmentation, offset: int):
        x = np.concatenate([task.train_x, aug.x])
        y = np.concatenate([task.train_y, aug.y])
        probe = probe_on(x, y, offset)
        methods[name] = score(probe_logits(probe, task.test_x))
        diagnostics[name] = _diagnostics(task, aug)
        return probe

    with_augmentation("addition", _addition(task, cfg.addition_lambda), 1)
    for i, alpha in enumerate(cfg.alphas):
        probe = with_augmentation(alpha_key(alpha), _lads(task, cfg, alpha), 2 + i)
        if alpha == 0.5:
            methods["lads_zs_ensemble"] = score(
                ensemble_probs(probe_logits(probe, task.test_x), zs_test)
            )
        if task.bias:
            with_augmentation(
                alpha_key(alpha) + "_no_domain_labels",
                _lads(task, cfg, alpha, use_domain_labels=False), 50 + i,
            )  # fmt: skip
    return {"methods": methods, "diagnostics": diagnostics}


# ---------------------------------------------------------------------------------------------
# Seeds and sweeps


SCALARS = ("train_domain", "unseen", "extended", "worst_domain", "worst_group", "mean_group")


def summarise(results: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and (sample) standard deviation over seeds of every scalar metric and diagnostic."""
    results = list(results)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for section in ("methods", "diagnostics"):
        for name in results[0][section]:
            for metric, value in results[0][section][name].items():
                if not isinstance(value, (int, float)) or value is None:
                    continue
                vals = np.array([r[section][name][metric] for r in results], dtype=float)
                std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
                out.setdefault(name, {})[metric] = {
                    "mean": float(vals.mean()),
                    "std": std,
                    "n": len(vals),
                }
    return out


def synthetic_run(space: JointSpaceConfig, cfg: LadsRunConfig) -> dict[str, Any]:
    """One seed on the constructed space: data seed and training seed are both ``cfg.seed``."""
    task = JointSpace(replace(space, seed=cfg.seed)).task()
    return run_methods(task, cfg)


def rho_sweep(
    space: JointSpaceConfig,
    cfg: LadsRunConfig,
    rhos: Iterable[float],
    seeds: Iterable[int],
    on_row: Callable[[dict[str, Any]], None],
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
) -> None:
    """Run every (ρ, seed); ``on_row`` gets {"config": ..., "metrics": ...} for each."""
    grid = [(float(rho), int(seed)) for rho in rhos for seed in seeds]
    for rho, seed in progress(grid):
        run_space = replace(space, rho_deg=rho, seed=seed)
        run_cfg = replace(cfg, seed=seed)
        metrics = synthetic_run(run_space, run_cfg)
        on_row(
            {"config": {"space": asdict(run_space), "run": run_cfg.to_dict()}, "metrics": metrics}
        )
