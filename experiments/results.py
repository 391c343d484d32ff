"""The one results format: JSON lines under ``experiments/results/<sweep>/``.

One row per run::

    {"sweep": ..., "run_id": ..., "status": "ok" | "failed", "config": {...},
     "metrics": {...}, "error": null | "...", "provenance": {...}}

``provenance`` records the git SHA, device, versions, host and time (:func:`provenance`).
Rows are appended with one ``write`` of a complete line followed by ``fsync``, so a crash can
leave at most a torn *last* line, which :func:`read_rows` skips. Figures read these files and
nothing else.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from theory.errors import InputError

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# what the runner and the figures write, and prose: a change there does not change a result
_NOT_CODE = ("experiments/results", "paper_figures/output", "*.md")


def git_sha(repo: str | Path | None = None) -> str | None:
    """The checkout's commit, with ``-dirty`` if tracked code differs from it, or None.

    Results, figures and Markdown do not count: a sweep appends rows and rewrites its
    ``.sweep.json`` while it runs, and would otherwise mark the code of every run that
    starts after it dirty."""
    here = Path(repo) if repo is not None else Path(__file__).resolve().parent
    # a copy of the tree without .git (e.g. sent to a GPU machine) says where it came from
    if repo is None and os.environ.get("PARROTS_GIT_SHA"):
        return os.environ["PARROTS_GIT_SHA"]
    excludes = [f":(top,exclude){path}" for path in _NOT_CODE]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":/", *excludes],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")


def provenance(device: str | None = None) -> dict[str, Any]:
    """Where and with what a result was produced."""
    versions = {"python": platform.python_version()}
    for name in ("numpy", "torch", "networkx", "sympy"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    torch = sys.modules.get("torch")
    if device and device.startswith("cuda") and torch is not None and torch.cuda.is_available():
        device = torch.cuda.get_device_name()  # "cuda" alone says nothing about the card
    return {
        "git_sha": git_sha(),
        "device": device or platform.processor() or platform.machine(),
        "host": platform.node(),
        "platform": platform.platform(),
        "versions": versions,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON row atomically enough for crash safety (single write + fsync)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def repair_torn_tail(path: str | Path) -> int:
    """Cut a torn last line (a crash mid-``append_row``) off the file; the bytes removed.

    :func:`read_rows` already skips a torn *last* line, but the next :func:`append_row` would
    bury it mid-file; a writer that resumes a file calls this first.
    """
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1  # 0 if the only line is torn
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return len(data) - keep


def latest_rows(path: str | Path) -> dict[str, dict[str, Any]]:
    """run_id -> the last row written for it (a retried run's newer row wins)."""
    out: dict[str, dict[str, Any]] = {}
    for row in read_rows(path):
        if isinstance(row, dict) and isinstance(row.get("run_id"), str):
            out[row["run_id"]] = row
    return out


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """All complete rows of a results file; a torn final line (from a crash) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):  # torn last line from a crash mid-write
                continue
            raise InputError(f"{path}:{number}: corrupt results row ({err.msg})") from err
    return rows
