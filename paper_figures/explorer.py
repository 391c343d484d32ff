"""The width-threshold explorer: lower-bound width, dense construction width and the
parameter-matched MoE width as the number of experts K grows, with K* marked.

Everything drawn comes from :mod:`theory.bounds` (imports: theory and matplotlib only):

* **lower bound** m_lb = :func:`~theory.bounds.lower_bound_width` ((m + H)·p ≥ |V| − 2), and
  its looser issue form (H·(m + 1)·p ≥ |V| − 2), dotted;
* **dense construction** m_d = :func:`~theory.bounds.dense_construction_width` = 2|V| + 4;
* **parameter-matched MoE** width per K (:func:`~theory.bounds.matched_moe_width`): exact
  (solid steps) and the paper's m_d/√K (dashed);
* **K*** (:func:`~theory.bounds.expert_threshold`), a vertical line, absent when the bound is
  vacuous for these settings;
* **empirical thresholds**, as points, from result rows under ``experiments/results/``
  (:func:`load_empirical`).

Use::

    ex = Explorer()            # sliders for |V| (log2), H, p, MLP ratio, K (log2)
    ex.update(vertices=256)    # what a slider does; returns the new Curves
    ex.save("widths.png")      # headless
    explore()                  # Jupyter (``%matplotlib widget``) or a window: returns Explorer

``parrots explore`` is the command-line front end.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.widgets import Slider

from theory import bounds
from theory.errors import InputError

RESULTS_DIR = Path(__file__).resolve().parent.parent / "experiments" / "results"
MIN_LOG2_K_AXIS = 12
MAX_LOG2_K_AXIS = 30


@dataclass(frozen=True)
class Settings:
    """What the sliders set. ``log2_experts`` picks the K read out in the title."""

    vertices: int = 64
    heads: int = 2
    bits: int = 16
    mlp_ratio: float = 4.0
    log2_experts: float = 6.0

    def __post_init__(self) -> None:
        bounds.lower_bound_width(self.vertices, self.heads, self.bits)  # validates
        bounds.mlp_hidden(1, self.mlp_ratio)
        if not 0 <= self.log2_experts <= MAX_LOG2_K_AXIS:
            raise InputError(
                f"log2_experts must be in [0, {MAX_LOG2_K_AXIS}], got {self.log2_experts}"
            )

    @property
    def experts(self) -> int:
        return round(2**self.log2_experts)


@dataclass(frozen=True)
class Curves:
    """The numbers one frame of the explorer draws."""

    settings: Settings
    experts: np.ndarray  # K grid (x axis)
    matched: np.ndarray  # exact matched MoE width per K (built widths, multiples of H)
    matched_real: np.ndarray  # the real root per K
    approx: np.ndarray  # m_d / sqrt(K)
    lower_bound: int
    lower_bound_issue_form: int
    construction: int
    k_star: int | None
    k_star_approx: int | None
    at_k: bounds.Matching  # the matched MoE at the selected K
    empirical: list[dict[str, Any]] = field(default_factory=list)


def curves(settings: Settings, empirical: list[dict[str, Any]] | None = None) -> Curves:
    """Compute every curve for ``settings`` (pure; what :meth:`Explorer.update` draws)."""
    s = settings
    k_star = bounds.expert_threshold(s.vertices, s.heads, s.bits, mlp_ratio=s.mlp_ratio)
    top = MIN_LOG2_K_AXIS
    if k_star is not None:
        top = max(top, math.ceil(math.log2(k_star)) + 2)
    top = min(max(top, math.ceil(s.log2_experts)), MAX_LOG2_K_AXIS)
    grid = np.unique(np.round(2.0 ** np.linspace(0, top, 8 * top + 1)).astype(np.int64))
    m_d = bounds.dense_construction_width(s.vertices)
    rows = [
        bounds.matched_moe_width(s.vertices, m_d, int(e), heads=s.heads, mlp_ratio=s.mlp_ratio)
        for e in grid
    ]
    at_k = bounds.matched_moe_width(
        s.vertices, m_d, s.experts, heads=s.heads, mlp_ratio=s.mlp_ratio
    )
    return Curves(
        settings=s,
        experts=grid,
        matched=np.array([r.width for r in rows]),
        matched_real=np.array([r.width_real for r in rows]),
        approx=np.array([r.width_approx for r in rows]),
        lower_bound=bounds.lower_bound_width(s.vertices, s.heads, s.bits),
        lower_bound_issue_form=bounds.lower_bound_width_issue_form(s.vertices, s.heads, s.bits),
        construction=m_d,
        k_star=k_star,
        k_star_approx=bounds.expert_threshold_approx(s.vertices, s.heads, s.bits),
        at_k=at_k,
        empirical=[row for row in (empirical or []) if row["vertices"] == s.vertices],
    )


def load_empirical(results_dir: str | Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Empirical width thresholds from result rows (``experiments/results/**/*.jsonl``).

    The contract: a row with ``"status": "ok"``, a number ``metrics.width_threshold`` (the
    smallest width that reached the run's accuracy target) and ``config.vertices`` and
    ``config.experts`` (``config.heads`` optional) is one point (K, width). Other rows and
    torn lines are skipped. Returns dicts with vertices, experts, heads, width, source.
    """
    out: list[dict[str, Any]] = []
    root = Path(results_dir)
    if not root.is_dir():
        return out
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or row.get("status", "ok") != "ok":
                continue
            config, metrics = row.get("config") or {}, row.get("metrics") or {}
            width = metrics.get("width_threshold") if isinstance(metrics, dict) else None
            if not isinstance(config, dict) or not isinstance(width, (int, float)):
                continue
            if not all(isinstance(config.get(key), int) for key in ("vertices", "experts")):
                continue
            out.append(
                {
                    "vertices": config["vertices"],
                    "experts": config["experts"],
                    "heads": config.get("heads"),
                    "width": float(width),
                    "source": str(path),
                }
            )
    return out


def draw(ax: Any, c: Curves) -> dict[str, Any]:
    """Draw one frame on ``ax`` (used by the explorer and by ``fig_widths``); the artists."""
    s = c.settings
    art: dict[str, Any] = {}
    (art["matched"],) = ax.step(
        c.experts,
        c.matched,
        where="post",
        color="C0",
        lw=2,
        label="param-matched MoE width (exact)",
    )
    (art["approx"],) = ax.plot(
        c.experts,
        c.approx,
        "--",
        color="C0",
        alpha=0.6,
        label=r"$m_d/\sqrt{K}$ (paper's approximation)",
    )
    art["construction"] = ax.axhline(
        c.construction, color="C2", lw=2, label="dense construction 2|V|+4"
    )
    art["lower_bound"] = ax.axhline(
        c.lower_bound, color="C3", lw=2, label="lower bound (m+H)p ≥ |V|−2"
    )
    art["lower_bound_issue"] = ax.axhline(
        c.lower_bound_issue_form, color="C3", ls=":", label="issue form H(m+1)p ≥ |V|−2"
    )
    art["k_star"] = ax.axvline(
        c.k_star or 1, color="k", ls="-.", lw=1.5, label="K* (first K below the bound)"
    )
    art["k_star"].set_visible(c.k_star is not None)
    art["selected"] = ax.plot([s.experts], [c.at_k.width], "o", color="C0", ms=7)[0]
    pts = c.empirical
    art["empirical"] = ax.scatter(
        [p["experts"] for p in pts] or [np.nan],
        [p["width"] for p in pts] or [np.nan],
        marker="*",
        s=120,
        color="C1",
        zorder=5,
        label=f"empirical width threshold ({len(pts)} found)",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("experts K")
    ax.set_ylabel("width m")
    ax.grid(True, which="major", alpha=0.3)
    _limits(ax, c)
    return art


def _limits(ax: Any, c: Curves) -> None:
    positive = c.matched[c.matched > 0]
    low = min([c.lower_bound_issue_form, c.lower_bound, *positive.tolist()[-1:]])
    ax.set_xlim(1, float(c.experts[-1]))
    ax.set_ylim(max(low / 2, 0.5), c.construction * 2)


def title(c: Curves) -> str:
    s = c.settings
    k_star = "none (bound vacuous)" if c.k_star is None else f"{c.k_star}"
    return (
        f"|V|={s.vertices}, H={s.heads}, p={s.bits}, r={s.mlp_ratio:g}: lower bound "
        f"{c.lower_bound}, construction {c.construction}, K*={k_star}\n"
        f"K={s.experts}: matched MoE width {c.at_k.width} (real {c.at_k.width_real:.1f}, "
        f"m_d/√K {c.at_k.width_approx:.1f}), active {c.at_k.active:,} of "
        f"{c.at_k.total:,} params"
    )


class Explorer:
    """The figure, its sliders and :meth:`update`, which every slider calls."""

    SLIDERS = (
        # name, label, lo, hi, step
        ("log2_vertices", "log2 |V|", 2.0, 12.0, 0.25),
        ("heads", "H", 1, 16, 1),
        ("bits", "p (bits)", 1, 64, 1),
        ("mlp_ratio", "MLP ratio r", 0.5, 8.0, 0.5),
        ("log2_experts", "log2 K", 0.0, 24.0, 0.5),
    )

    def __init__(
        self,
        settings: Settings | None = None,
        empirical: list[dict[str, Any]] | None = None,
        figure: Figure | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.empirical = list(empirical or [])
        self.figure = figure or plt.figure(figsize=(10, 7.5))
        self.current = curves(self.settings, self.empirical)
        # sliders first: each Slider draws the figure once when made, cheap while it is bare
        self.sliders: dict[str, Slider] = {}
        self._syncing = False
        values = self._slider_values(self.settings)
        for i, (name, label, lo, hi, step) in enumerate(self.SLIDERS):
            sax = self.figure.add_axes((0.16, 0.24 - 0.045 * i, 0.55, 0.028))
            slider = Slider(sax, label, lo, hi, valinit=values[name], valstep=step)
            slider.on_changed(self._on_slider)
            self.sliders[name] = slider
        self.ax = self.figure.add_axes((0.09, 0.36, 0.62, 0.52))
        self.artists = draw(self.ax, self.current)
        self.ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        self.title = self.ax.set_title(title(self.current), fontsize=9)

    @staticmethod
    def _slider_values(s: Settings) -> dict[str, float]:
        return {
            "log2_vertices": math.log2(s.vertices),
            "heads": s.heads,
            "bits": s.bits,
            "mlp_ratio": s.mlp_ratio,
            "log2_experts": s.log2_experts,
        }

    def _on_slider(self, _value: float) -> None:
        if self._syncing:
            return
        v = {name: slider.val for name, slider in self.sliders.items()}
        self.update(
            vertices=max(3, round(2 ** v["log2_vertices"])),
            heads=int(v["heads"]),
            bits=int(v["bits"]),
            mlp_ratio=float(v["mlp_ratio"]),
            log2_experts=float(v["log2_experts"]),
        )

    def update(self, **changes: Any) -> Curves:
        """Change settings (vertices, heads, bits, mlp_ratio, log2_experts), redraw, return
        the new :class:`Curves`. Invalid values raise InputError and change nothing."""
        unknown = set(changes) - set(Settings.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown explorer settings {sorted(unknown)}")
        settings = replace(self.settings, **changes)
        c = curves(settings, self.empirical)
        self.settings, self.current = settings, c
        a = self.artists
        a["matched"].set_data(c.experts, c.matched)
        a["approx"].set_data(c.experts, c.approx)
        a["construction"].set_ydata([c.construction, c.construction])
        a["lower_bound"].set_ydata([c.lower_bound, c.lower_bound])
        a["lower_bound_issue"].set_ydata([c.lower_bound_issue_form] * 2)
        a["k_star"].set_xdata([c.k_star or 1, c.k_star or 1])
        a["k_star"].set_visible(c.k_star is not None)
        a["selected"].set_data([settings.experts], [c.at_k.width])
        pts = c.empirical
        offsets = np.array([[p["experts"], p["width"]] for p in pts]).reshape(-1, 2)
        a["empirical"].set_offsets(offsets if len(pts) else np.array([[np.nan, np.nan]]))
        self.title.set_text(title(c))
        _limits(self.ax, c)
        self._syncing = True  # keep the sliders showing the settings, without re-entering
        try:
            values = self._slider_values(settings)
            for name, slider in self.sliders.items():
                if name == "log2_vertices" and round(2**slider.val) == settings.vertices:
                    continue
                if not math.isclose(slider.val, values[name]):
                    slider.drawon = False  # one redraw below, not one per slider
                    slider.set_val(values[name])
                    slider.drawon = True
        finally:
            self._syncing = False
        self.figure.canvas.draw_idle()
        return c

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.figure.savefig(path, dpi=110)
        return path


def explore(**settings: Any) -> Explorer:
    """Open the explorer (in Jupyter use ``%matplotlib widget`` first for live sliders)."""
    return Explorer(Settings(**settings), load_empirical())
