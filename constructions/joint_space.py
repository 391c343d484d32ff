"""A constructed joint image/text embedding space with known geometry, for testing LADS.

This is a stand-in for CLIP (``../shared/research/lads.md`` §5.2), not CLIP: every direction is
chosen, so what LADS should and should not be able to do is known in advance.

Orthonormal directions (columns of one seeded random rotation of R^d):

- ``c_y``  class directions (shared by images and text), y = 0..K−1;
- ``u_y``  training-domain-only class cues (texture, say), used centred: ũ_y = u_y − mean u;
- ``s_m``  image domain (style) directions, m = 0..D−1, m = 0 the training domain;
- ``r_m``  text-only directions orthogonal to every image direction;
- ``z_{m,y}``, ``z'_{m,y}``  class × domain interaction directions, used centred over classes:
  w_{m,y} = z_{m,y} − mean_y z_{m,y} (w'_{m,y} likewise);
- ``g_img``, ``g_txt``  the two modality offsets (CLIP's modality gap).

Image embedding of class y in domain m (before the final L2 normalisation)::

    x = a·c_y + b·s_m + e·[m = 0]·ũ_y + κ·w_{m,y} + γ·g_img + σ_c·(class-block noise) + σ·ε

with w_{0,y} = 0 in the domain-extension setting (the interaction exists only in unseen
domains), and the class-block noise making the shared class signal weaker than the cue ũ_y,
so a probe trained on the training domain leans on a cue that vanishes in unseen domains.

Text embedding of the prompt "<domain m> of a <class y>"::

    t(m, y) = a'·c_y + τ·[ b·(cos ρ·s_m + sin ρ·r_m) + κ·(cos ρ·w_{m,y} + sin ρ·w'_{m,y}) ]
              + γ'·g_txt (+ optional prompt noise)

**The alignment knob ρ.** Write D(y, m) = b·(s_m − s_0) + κ·(w_{m,y} − w_{0,y}) for the part
of the true image shift of class y that text can describe (everything but losing the
training-only cue). The text shift t(m, y) − t(0, y) equals τ·(cos ρ·D + sin ρ·D') with D'
the same vector built from r and w', which is orthogonal to D and of equal norm, so the angle
between the text shift and D is exactly ρ, for every class. Averaged over classes the centred
terms cancel, so the angle between the mean text shift and the mean *full* image shift is ρ as
well. ρ = 0: language describes the shift perfectly; ρ = 90°: it describes something
orthogonal to it. Images do not depend on ρ (they come from their own random stream).

**Bias variant** (Waterbirds-like, ``bias=True``): two classes and two domains ("attributes");
in training and validation the attribute equals the class (100% correlation), the test set has
all four groups equally. The cue term is not used; the interaction exists in both domains.

**Scale.** With the defaults a matched image and prompt have mean cosine ≈ 0.16, two test
images ≈ 0.6 and two prompts ≈ 0.84, since the modality offsets dominate the norms, roughly as
in CLIP (measured on seed 0).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from models.lads import EmbeddingTask
from theory.errors import InputError


@dataclass(frozen=True)
class JointSpaceConfig:
    """Every knob of the constructed space; the defaults are the ones the sweep uses."""

    rho_deg: float = 0.0
    dim: int = 128
    n_classes: int = 10
    n_domains: int = 3  # domain 0 is the training domain
    class_scale: float = 1.0  # a
    class_noise: float = 0.7  # σ_c, noise inside the class block
    domain_scale: float = 1.0  # b
    cue_scale: float = 0.8  # e, the training-domain-only class cue
    interaction: float = 0.6  # κ, the class × domain interaction
    gap: float = 3.0  # γ, image modality offset (3: CLIP-like cosines, see below)
    noise: float = 0.3  # σ, isotropic noise (norm)
    text_class_scale: float = 1.0  # a'
    text_shift_scale: float = 1.0  # τ
    text_gap: float = 3.0  # γ'
    text_noise: float = 0.0
    n_train: int = 100  # per class (and per domain in the bias variant)
    n_val: int = 20
    n_test: int = 100  # per class and domain
    bias: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "bias":
                if not isinstance(value, bool):
                    raise InputError(f"bias must be a bool, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{f.name} must be a number, got {value!r}")
            if not np.isfinite(value) or value < 0:
                raise InputError(f"{f.name} must be finite and non-negative, got {value!r}")
            if f.type in ("int", int) and not isinstance(value, int):
                raise InputError(f"{f.name} must be an integer, got {value!r}")
        if not 0.0 <= self.rho_deg <= 90.0:
            raise InputError(f"rho_deg must lie in [0, 90], got {self.rho_deg!r}")
        if self.n_classes < 2 or self.n_domains < 2:
            raise InputError(
                f"need at least 2 classes and 2 domains, got {self.n_classes}, {self.n_domains}"
            )
        if self.bias and (self.n_classes, self.n_domains) != (2, 2):
            raise InputError(
                "the bias variant has exactly 2 classes and 2 domains, got "
                f"{self.n_classes} and {self.n_domains}"
            )
        if self.domain_scale == 0:
            raise InputError("domain_scale must be positive (domains must differ), got 0")
        for name in ("n_train", "n_val", "n_test"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.dim < self.required_dim:
            raise InputError(f"dim must be at least {self.required_dim} here, got {self.dim}")

    @property
    def required_dim(self) -> int:
        k, m = self.n_classes, self.n_domains
        return 2 * k + 2 * m + 2 * m * k + 2

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JointSpaceConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown JointSpaceConfig fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> JointSpaceConfig:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as err:
            raise InputError(f"not a JointSpaceConfig: {err}") from err


def _unit_rows(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class JointSpace:
    """The directions of one seeded space, its noise-free means, and samples from it."""

    def __init__(self, cfg: JointSpaceConfig) -> None:
        self.cfg = cfg
        k, m, d = cfg.n_classes, cfg.n_domains, cfg.dim
        gaussian = np.random.default_rng([cfg.seed, 0]).standard_normal((d, d))
        basis, _ = np.linalg.qr(gaussian)
        cols = iter(basis.T)  # orthonormal rows, handed out block by block

        def take(*shape: int) -> np.ndarray:
            count = int(np.prod(shape))
            return np.stack([next(cols) for _ in range(count)]).reshape(*shape, d)

        self.class_dirs = take(k)  # c_y
        cue = take(k)
        self.cue = cue - cue.mean(axis=0)  # ũ_y
        self.style = take(m)  # s_m
        self.text_only = take(m)  # r_m
        z, z_text = take(m, k), take(m, k)
        self.inter = z - z.mean(axis=1, keepdims=True)  # w_{m,y}
        self.inter_text = z_text - z_text.mean(axis=1, keepdims=True)  # w'_{m,y}
        if not cfg.bias:  # the interaction exists only in unseen domains
            self.inter[0] = 0.0
            self.inter_text[0] = 0.0
        self.gap_img, self.gap_txt = take(2)

    # -- noise-free latents (before normalisation) -------------------------------------------

    def image_mean(self, y: int, m: int) -> np.ndarray:
        """E[x | y, m] before the noise and the final normalisation."""
        c = self.cfg
        cue = c.cue_scale * self.cue[y] if (m == 0 and not c.bias) else 0.0
        return (
            c.class_scale * self.class_dirs[y]
            + c.domain_scale * self.style[m]
            + cue
            + c.interaction * self.inter[m, y]
            + c.gap * self.gap_img
        )

    def describable_shift(self, y: int, m: int) -> np.ndarray:
        """D(y, m) = b·(s_m − s_0) + κ·(w_{m,y} − w_{0,y}): the part text can describe."""
        c = self.cfg
        return c.domain_scale * (self.style[m] - self.style[0]) + c.interaction * (
            self.inter[m, y] - self.inter[0, y]
        )

    @cached_property
    def rho(self) -> float:
        return float(np.deg2rad(self.cfg.rho_deg))

    def text_mean(self, m: int, y: int) -> np.ndarray:
        """The prompt "<domain m> of a <class y>" before noise and normalisation."""
        c, co, si = self.cfg, np.cos(self.rho), np.sin(self.rho)
        domain = c.domain_scale * (co * self.style[m] + si * self.text_only[m])
        inter = c.interaction * (co * self.inter[m, y] + si * self.inter_text[m, y])
        return (
            c.text_class_scale * self.class_dirs[y]
            + c.text_shift_scale * (domain + inter)
            + c.text_gap * self.gap_txt
        )

    def generic_text_mean(self, y: int) -> np.ndarray:
        """The prompt "a photo of a <class y>" with no domain in it."""
        c = self.cfg
        return c.text_class_scale * self.class_dirs[y] + c.text_gap * self.gap_txt

    # -- samples -----------------------------------------------------------------------------

    def sample_images(self, y: np.ndarray, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """L2-normalised image embeddings of classes y in domains m."""
        c = self.cfg
        means = np.stack([self.image_mean(int(a), int(b)) for a, b in zip(y, m, strict=True)])
        class_noise = c.class_noise * rng.standard_normal((len(y), c.n_classes)) @ self.class_dirs
        iso = c.noise * rng.standard_normal((len(y), c.dim)) / np.sqrt(c.dim)
        return _unit_rows(means + class_noise + iso)

    def prompts(self) -> tuple[np.ndarray, np.ndarray]:
        """(domain_prompts (D, K, d), class_prompts (K, d)), L2-normalised."""
        c = self.cfg
        rng = np.random.default_rng([c.seed, 2])
        dom = np.stack(
            [[self.text_mean(m, y) for y in range(c.n_classes)] for m in range(c.n_domains)]
        )
        gen = np.stack([self.generic_text_mean(y) for y in range(c.n_classes)])
        if c.text_noise > 0:
            dom = dom + c.text_noise * rng.standard_normal(dom.shape) / np.sqrt(c.dim)
            gen = gen + c.text_noise * rng.standard_normal(gen.shape) / np.sqrt(c.dim)
        return _unit_rows(dom), _unit_rows(gen)

    def _labels(self, per: int, domains: list[int]) -> tuple[np.ndarray, np.ndarray]:
        k = self.cfg.n_classes
        y = np.tile(np.repeat(np.arange(k), per), len(domains))
        m = np.repeat(np.asarray(domains), per * k)
        return y, m

    def task(self) -> EmbeddingTask:
        """Train / val / test splits and prompts. Extension setting: train and val come from
        domain 0 only, test from every domain. Bias setting: the domain equals the class in
        train and val, and test has all (class, domain) groups."""
        c = self.cfg
        rng = np.random.default_rng([c.seed, 1])
        splits = {}
        for name, per in (("train", c.n_train), ("val", c.n_val)):
            if c.bias:
                y = np.repeat(np.arange(c.n_classes), per)
                m = y.copy()
            else:
                y, m = self._labels(per, [0])
            splits[name] = (self.sample_images(y, m, rng), y, m)
        y, m = self._labels(c.n_test, list(range(c.n_domains)))
        splits["test"] = (self.sample_images(y, m, rng), y, m)
        dom, gen = self.prompts()
        return EmbeddingTask.from_splits(splits, dom, gen, c.bias)


def angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    """The angle between two vectors, in degrees."""
    cos = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
