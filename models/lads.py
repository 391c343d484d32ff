"""LADS: extending a classifier to unseen domains described only in words (arXiv 2210.09520).

The method as the official code implements it (``../shared/research/lads.md`` §1):

1. For each unseen domain j, an augmentation network f_j (Linear d→h, ReLU, Linear h→d; no
   residual, no output normalisation) is trained on training-domain image embeddings x with
   labels y to minimise  α·L_DA + (1 − α)·L_CC, where

   - L_DA = mean[ 1 − cos( f_j(x) − x,  t_j(y) − t_0(y) ) ]   (domain alignment: only the
     *direction* of the shift is constrained, never its size), with t_m(y) the embedding of the
     class-specific prompt of domain m ("a painting of a {y}");
   - L_CC = cross-entropy( cos(normalise(f_j(x)), T_c), y )   (class consistency: raw cosines
     against the class prompts T_c, no temperature, inverse-frequency class weights).

   The epoch with the lowest loss on the training-domain validation set is kept.
2. The final classifier is a linear probe (one ``nn.Linear`` with bias) trained on the real
   embeddings plus every normalise(f_j(x)), which keep their labels; the epoch with the best
   balanced validation accuracy is kept.

The baselines are computed here the same way: zero-shot (100·cos against prompt embeddings),
the linear probe, the probe initialised from the zero-shot weights, the zero-shot + probe
softmax ensemble, and the closed-form text-shift augmentation "Addition", normalise(x + λ·Δt).

Everything takes plain arrays: an :class:`EmbeddingTask` holds the image embeddings of each
split and the prompt embeddings, whether they come from a constructed joint space or from CLIP.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from theory.errors import InputError

CLIP_LOGIT_SCALE = 100.0  # zero-shot CLIP logits are 100·cos


def _check_positive(obj: Any, names: tuple[str, ...], integer: bool) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise InputError(
                f"{name} must be a {'n integer' if integer else ' number'}, got {value!r}"
            )
        if value <= 0:
            raise InputError(f"{name} must be positive, got {value!r}")


_C = TypeVar("_C", bound="_JsonConfig")


class _JsonConfig:
    """JSON round trip for the frozen config dataclasses below."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise InputError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls: type[_C], text: str) -> _C:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"not a {cls.__name__}: {err}") from err
        return cls.from_dict(data)


@dataclass(frozen=True)
class AugmenterConfig(_JsonConfig):
    """Training of one f_aug network (defaults: the official base config, hidden = d/2)."""

    alpha: float = 0.5  # weight of L_DA; 1 − alpha weighs L_CC
    hidden: int = 64
    epochs: int = 50
    lr: float = 0.005
    weight_decay: float = 0.05
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise InputError(f"alpha must be a number in [0, 1], got {self.alpha!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha must lie in [0, 1], got {self.alpha!r}")
        _check_positive(self, ("hidden", "epochs", "batch_size"), integer=True)
        _check_positive(self, ("lr",), integer=False)
        if self.weight_decay < 0:
            raise InputError(f"weight_decay must be non-negative, got {self.weight_decay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class ProbeConfig(_JsonConfig):
    """Training of the final linear probe (AdamW, class-weighted cross-entropy)."""

    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 0.05
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive(self, ("epochs", "batch_size"), integer=True)
        _check_positive(self, ("lr",), integer=False)
        if self.weight_decay < 0:
            raise InputError(f"weight_decay must be non-negative, got {self.weight_decay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class EmbeddingTask:
    """The inputs of LADS: image embeddings per split, and prompt embeddings.

    ``*_x`` are (n, d) image embeddings, ``*_y`` (n,) class indices, ``*_d`` (n,) domain
    indices. ``domain_prompts[m, c]`` is the embedding of the class-specific prompt of domain m
    ("a photo of a {c}" for m = 0, the training domain; "a painting of a {c}" for an unseen
    one); ``class_prompts[c]`` is the generic class prompt of the consistency classifier and of
    generic zero-shot. ``bias=True`` is the dataset-bias setting (Waterbirds): every domain
    occurs in training and each example is augmented towards the other domain.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    train_d: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    val_d: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    test_d: np.ndarray
    domain_prompts: np.ndarray
    class_prompts: np.ndarray
    bias: bool = False

    def __post_init__(self) -> None:
        n_dom, n_cls, dim = self.domain_prompts.shape if self.domain_prompts.ndim == 3 else (0,) * 3
        if self.domain_prompts.ndim != 3 or n_dom < 2 or n_cls < 2:
            raise InputError(
                "domain_prompts must have shape (domains ≥ 2, classes ≥ 2, d), got "
                f"{self.domain_prompts.shape}"
            )
        if self.class_prompts.shape != (n_cls, dim):
            raise InputError(
                f"class_prompts must have shape {(n_cls, dim)}, got {self.class_prompts.shape}"
            )
        for split in ("train", "val", "test"):
            x, y, d = (getattr(self, f"{split}_{k}") for k in "xyd")
            if x.ndim != 2 or x.shape[1] != dim or x.shape[0] == 0:
                raise InputError(f"{split}_x must have shape (n ≥ 1, {dim}), got {x.shape}")
            if y.shape != (x.shape[0],) or d.shape != (x.shape[0],):
                raise InputError(
                    f"{split}_y and {split}_d must have shape ({x.shape[0]},), got "
                    f"{y.shape} and {d.shape}"
                )
            if not np.all(np.isfinite(x)):
                raise InputError(f"{split}_x has non-finite values")
            for name, arr, top in ((f"{split}_y", y, n_cls), (f"{split}_d", d, n_dom)):
                if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= top:
                    raise InputError(f"{name} must hold integers in [0, {top}), got {arr[:5]}…")
        if not self.bias and np.any(self.train_d != 0):
            raise InputError("train_d must be all 0 (the training domain) unless bias=True")
        for name in ("domain_prompts", "class_prompts"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise InputError(f"{name} has non-finite values")

    @classmethod
    def from_splits(
        cls,
        splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
        domain_prompts: np.ndarray,
        class_prompts: np.ndarray,
        bias: bool = False,
    ) -> EmbeddingTask:
        """From ``{"train": (x, y, d), "val": ..., "test": ...}``."""
        (tx, ty, td), (vx, vy, vd), (sx, sy, sd) = (splits[k] for k in ("train", "val", "test"))
        return cls(tx, ty, td, vx, vy, vd, sx, sy, sd, domain_prompts, class_prompts, bias)

    @property
    def n_classes(self) -> int:
        return int(self.domain_prompts.shape[1])

    @property
    def n_domains(self) -> int:
        return int(self.domain_prompts.shape[0])


# ---------------------------------------------------------------------------------------------
# Text directions and the two losses


def normalise(v: torch.Tensor) -> torch.Tensor:
    return F.normalize(v, dim=-1)


def text_directions(domain_prompts: np.ndarray, source: int, target: int) -> np.ndarray:
    """Δt(c) = normalise(t_target(c) − t_source(c)) for every class c: (C, d)."""
    p = domain_prompts / np.linalg.norm(domain_prompts, axis=-1, keepdims=True)
    delta = p[target] - p[source]
    return delta / np.maximum(np.linalg.norm(delta, axis=-1, keepdims=True), 1e-12)


def bias_directions(domain_prompts: np.ndarray, y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Per-example direction to "the other" domain (bias setting, two domains): (n, d)."""
    if domain_prompts.shape[0] != 2:
        raise InputError(f"the bias setting needs exactly 2 domains, got {domain_prompts.shape[0]}")
    p = domain_prompts / np.linalg.norm(domain_prompts, axis=-1, keepdims=True)
    delta = p[1 - d, y] - p[d, y]
    return delta / np.maximum(np.linalg.norm(delta, axis=-1, keepdims=True), 1e-12)


def domain_alignment_loss(
    x: torch.Tensor, fx: torch.Tensor, direction: torch.Tensor
) -> torch.Tensor:
    """L_DA = mean over the batch of 1 − cos(f(x) − x, Δt(y))."""
    return (1.0 - F.cosine_similarity(fx - x, direction, dim=-1)).mean()


def class_consistency_loss(
    fx: torch.Tensor,
    class_prompts: torch.Tensor,
    y: torch.Tensor,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_CC = cross-entropy of the raw cosines cos(normalise(f(x)), T_c) (no temperature)."""
    logits = normalise(fx) @ normalise(class_prompts).T
    return F.cross_entropy(logits, y, weight=class_weights)


class LadsLoss(NamedTuple):
    """The objective and its two unweighted parts."""

    total: torch.Tensor
    domain_alignment: torch.Tensor
    class_consistency: torch.Tensor


def lads_loss(
    x: torch.Tensor,
    fx: torch.Tensor,
    direction: torch.Tensor,
    class_prompts: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    class_weights: torch.Tensor | None = None,
) -> LadsLoss:
    """α·L_DA + (1 − α)·L_CC."""
    da = domain_alignment_loss(x, fx, direction)
    cc = class_consistency_loss(fx, class_prompts, y, class_weights)
    return LadsLoss(alpha * da + (1.0 - alpha) * cc, da, cc)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse class frequency, scaled so that the largest weight is 1 (absent classes: 1)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, 1.0 / np.maximum(counts, 1.0), 0.0)
    w = w / w.max()
    return np.where(counts > 0, w, 1.0)


# ---------------------------------------------------------------------------------------------
# The augmentation network and its training


class AugmentationNetwork(nn.Module):
    """f_aug: Linear(d → h), ReLU, Linear(h → d); no residual, no output normalisation."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class TrainedAugmenter:
    network: AugmentationNetwork
    best_epoch: int
    train_loss: list[float]  # per epoch, mean of the objective over batches
    val_loss: list[float]  # per epoch, the objective on the validation set


def _tensor(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)


def train_augmenter(
    x: np.ndarray,
    y: np.ndarray,
    directions: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    val_directions: np.ndarray,
    class_prompts: np.ndarray,
    cfg: AugmenterConfig,
) -> TrainedAugmenter:
    """Train one f_aug; ``directions[i]`` is the text direction for example i (n, d).

    AdamW on mini-batches; the network of the epoch with the lowest validation objective
    (training-domain validation images only) is returned.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    n_classes = class_prompts.shape[0]
    net = AugmentationNetwork(x.shape[1], cfg.hidden)
    with torch.no_grad():  # seeded initialisation without touching the global RNG
        for module in net.net:
            if isinstance(module, nn.Linear):
                bound = 1.0 / module.in_features**0.5
                module.weight.uniform_(-bound, bound, generator=gen)
                module.bias.uniform_(-bound, bound, generator=gen)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt, yt, dt = _tensor(x), _tensor(y, torch.long), _tensor(directions)
    vx, vy, vd = _tensor(val_x), _tensor(val_y, torch.long), _tensor(val_directions)
    prompts = _tensor(class_prompts)
    weights = _tensor(class_weights(y, n_classes))
    best, best_state, best_epoch = float("inf"), copy.deepcopy(net.state_dict()), -1
    train_hist, val_hist = [], []
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.randperm(len(xt), generator=gen)
        total, batches = 0.0, 0
        for start in range(0, len(xt), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            loss = lads_loss(xt[idx], net(xt[idx]), dt[idx], prompts, yt[idx], cfg.alpha, weights)
            opt.zero_grad()
            loss.total.backward()
            opt.step()
            total, batches = total + loss.total.item(), batches + 1
        net.eval()
        with torch.no_grad():
            val = float(lads_loss(vx, net(vx), vd, prompts, vy, cfg.alpha, weights).total)
        train_hist.append(total / batches)
        val_hist.append(val)
        if val < best:
            best, best_state, best_epoch = val, copy.deepcopy(net.state_dict()), epoch
    net.load_state_dict(best_state)
    net.eval()
    return TrainedAugmenter(net, best_epoch, train_hist, val_hist)


def augment(network: AugmentationNetwork, x: np.ndarray) -> np.ndarray:
    """normalise(f_aug(x)), the augmented embeddings the probe is trained on."""
    with torch.no_grad():
        return normalise(network(_tensor(x))).numpy().astype(np.float64)


def addition_augment(x: np.ndarray, shift: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """The closed-form baseline: normalise(x + λ·Δt), Δt the per-example text shift (n, d)."""
    z = x + lam * shift
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# The linear probe, zero-shot and the ensemble


def balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    classes = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def train_probe(
    x: np.ndarray,
    y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    n_classes: int,
    cfg: ProbeConfig,
    init_weight: np.ndarray | None = None,
) -> nn.Linear:
    """A linear probe on normalised embeddings; best balanced validation accuracy is kept.

    ``init_weight`` (C, d), if given, initialises the weights (zero-shot init: the class prompt
    embeddings) with a zero bias; otherwise the initialisation is seeded from ``cfg.seed``.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    probe = nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        if init_weight is None:
            bound = 1.0 / x.shape[1] ** 0.5
            probe.weight.uniform_(-bound, bound, generator=gen)
            probe.bias.uniform_(-bound, bound, generator=gen)
        else:
            probe.weight.copy_(_tensor(init_weight))
            probe.bias.zero_()
    xt = normalise(_tensor(x))
    yt = _tensor(y, torch.long)
    vx = normalise(_tensor(val_x))
    weights = _tensor(class_weights(y, n_classes))
    opt = torch.optim.AdamW(probe.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state = -1.0, copy.deepcopy(probe.state_dict())
    for _ in range(cfg.epochs):
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            loss = F.cross_entropy(probe(xt[idx]), yt[idx], weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = balanced_accuracy(probe(vx).argmax(-1).numpy(), val_y)
        if acc > best:
            best, best_state = acc, copy.deepcopy(probe.state_dict())
    probe.load_state_dict(best_state)
    return probe


def probe_logits(probe: nn.Linear, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return probe(normalise(_tensor(x))).numpy().astype(np.float64)


def zero_shot_weights(prompts: np.ndarray) -> np.ndarray:
    """Class weights from prompt embeddings (C, d) or (templates, C, d): mean, normalised."""
    p = prompts / np.linalg.norm(prompts, axis=-1, keepdims=True)
    if p.ndim == 3:
        p = p.mean(axis=0)
        p = p / np.linalg.norm(p, axis=-1, keepdims=True)
    return p


def zero_shot_logits(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """CLIP zero-shot: 100·cos(x, w_c)."""
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return CLIP_LOGIT_SCALE * xn @ weights.T


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def ensemble_probs(probe_logits_: np.ndarray, zs_logits: np.ndarray) -> np.ndarray:
    """The official ensemble: the mean of the probe's and zero-shot's softmax."""
    return 0.5 * (softmax(probe_logits_) + softmax(zs_logits))


# ---------------------------------------------------------------------------------------------
# Metrics


def domain_metrics(
    pred: np.ndarray, y: np.ndarray, d: np.ndarray, n_domains: int, n_classes: int
) -> dict[str, Any]:
    """Accuracies by domain: training domain (0), unseen (pooled over domains ≥ 1), extended
    (pooled over all), worst domain, per domain, and worst/mean over (class, domain) groups."""
    correct = pred == y
    per_domain = [
        float(correct[d == m].mean()) if np.any(d == m) else None for m in range(n_domains)
    ]
    present = [a for a in per_domain if a is not None]
    groups = [
        float(correct[(d == m) & (y == c)].mean())
        for m in range(n_domains)
        for c in range(n_classes)
        if np.any((d == m) & (y == c))
    ]
    unseen = d != 0
    return {
        "train_domain": per_domain[0],
        "unseen": float(correct[unseen].mean()) if np.any(unseen) else None,
        "extended": float(correct.mean()),
        "worst_domain": min(present),
        "per_domain": per_domain,
        "worst_group": min(groups),
        "mean_group": float(np.mean(groups)),
    }
