"""Every paper figure is a module ``paper_figures/fig_*.py`` with ``make(out_dir) -> list[Path]``.

Figure modules read committed result files (``experiments/results/``) and import only
``theory``; ``parrots figures`` calls them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

import paper_figures

FIGURES_DIR = Path(__file__).resolve().parent / "output"


def figure_makers() -> dict[str, Callable[[Path], list[Path]]]:
    """Name -> ``make`` for every figure module, in name order."""
    out = {}
    for info in sorted(pkgutil.iter_modules(paper_figures.__path__), key=lambda m: m.name):
        if info.name.startswith("fig_"):
            module = importlib.import_module(f"paper_figures.{info.name}")
            out[info.name] = module.make
    return out
