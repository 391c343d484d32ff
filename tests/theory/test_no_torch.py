"""The ground floor stays free of torch: the mathematics runs without a deep-learning stack."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import theory


def test_theory_never_imports_torch():
    modules = [f"theory.{m.name}" for m in pkgutil.iter_modules(theory.__path__)]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "assert 'torch' not in sys.modules, 'theory imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
