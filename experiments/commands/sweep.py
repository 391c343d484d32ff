"""``parrots sweep NAME --scale tiny|small|paper``: run a sweep of the catalogue, resumably.

Rows go to ``experiments/results/NAME/SCALE.jsonl`` (one per run; see
:mod:`experiments.runner`); rerunning the command finishes what a killed run left.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from experiments.host_malloc import keep_freed_memory
from experiments.progress import SweepStatus, device_use, render_devices, sweep_status
from experiments.results import RESULTS_DIR
from experiments.runner import EXECUTORS, SCRATCH_DIR, run_sweep, select_runs
from experiments.sweep import SCALES, SWEEP_NAMES, SweepConfig, get_sweep
from experiments.table import Table, results_table
from theory.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a sweep (resumable; rows under experiments/results/NAME/)",
        description="Run the sweep NAME of the catalogue (experiments/sweep.py) at a scale. "
        "Killed and rerun, it finishes without redoing completed runs.",
    )
    p.add_argument("name", help=f"one of {', '.join(SWEEP_NAMES)} ('all' with --status)")
    p.add_argument("--scale", default="tiny", help=f"one of {', '.join(SCALES)}")
    p.add_argument("--config", default=None, help="a SweepConfig JSON file instead of NAME")
    p.add_argument("--workers", type=int, default=1, help="worker processes (local executor)")
    p.add_argument(
        "--runs-per-worker",
        type=int,
        default=1,
        help="runs each worker trains at once, on threads with a CUDA stream each (local)",
    )
    p.add_argument("--executor", default="local", choices=EXECUTORS)
    p.add_argument(
        "--cluster",
        default=None,
        choices=("slurm", "local", "debug"),
        help="submitit: the backend (default: SLURM if available, else local)",
    )
    p.add_argument("--results", default=str(RESULTS_DIR), help="results root folder")
    p.add_argument("--scratch", default=str(SCRATCH_DIR), help="checkpoints (git-ignored)")
    p.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME=V[,V...]",
        help="run only the slice of runs with these settings (repeatable), e.g. "
        "--only layers=2 --only experts=1,4",
    )
    p.add_argument(
        "--stop-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start no run after SECONDS (runs in flight finish; rerun for the rest)",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay each run's steps as CUDA graphs (an execution option: run ids unchanged)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile each run's forward with torch.compile (an execution option: run ids "
        "unchanged; an MoE compiles on a GPU only)",
    )
    p.add_argument(
        "--device-sampler",
        action="store_true",
        help="draw graph batches with torch on the training device, the same distribution "
        "(an execution option: run ids unchanged; runs with a curriculum keep numpy)",
    )
    p.add_argument(
        "--guard-interval",
        type=int,
        default=None,
        metavar="N",
        help="read the trainer's NaN/PAD guard every N steps, not every step (an execution "
        "option: a finite run computes the same; run ids unchanged)",
    )
    p.add_argument("--list", action="store_true", help="print the runs and exit")
    p.add_argument(
        "--status",
        action="store_true",
        help="print the runs done, failed and missing per grid, and the device time the rows "
        "record (busy minutes, runs/hour); runs nothing. NAME 'all': every sweep at --scale",
    )
    p.add_argument(
        "--table",
        action="store_true",
        help="print the finished runs as a Markdown table: a line per configuration, mean "
        "[min-max] over its seeds (experiments/table.py); runs nothing",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=None,
        metavar="NAME",
        help="with --table: a metric column (repeatable; default: the sweep's headline metrics)",
    )
    p.add_argument("--json", action="store_true", help="with --status or --table: one JSON object")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def parse_only(items: list[str]) -> dict[str, list]:
    """``["layers=2", "experts=1,4"]`` -> {"layers": [2], "experts": [1, 4]} (JSON values)."""
    only: dict[str, list] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise InputError(f"--only wants NAME=V[,V...], got {item!r}")
        parsed = []
        for text in values.split(","):
            try:
                parsed.append(json.loads(text))
            except json.JSONDecodeError:
                parsed.append(text)  # a bare string such as a grid label
        only.setdefault(name, []).extend(parsed)
    return only


def status(args: argparse.Namespace) -> int:
    """``--status``: where the sweep(s) stand, from their rows (experiments/progress.py)."""
    if args.name == "all" and args.config is None:
        sweeps = [get_sweep(name, args.scale) for name in SWEEP_NAMES if name != "selftest"]
        only: dict[str, list] = {}
        if args.only:
            raise InputError("--only slices one sweep; give its NAME instead of 'all'")
    else:
        sweeps = [_sweep(args)]
        only = parse_only(args.only)
    found = [sweep_status(s, args.results, only) for s in sweeps]
    every = device_use(row for s in found for row in s.rows)
    if args.json:
        out = {"sweeps": [s.to_dict() for s in found]}
        if len(found) > 1:
            out["devices"] = [u.to_dict() for u in every]
        print(json.dumps(out))
        return 0
    print("\n".join(s.render() for s in found))
    if len(found) > 1:
        print(f"all {args.scale} sweeps together:")
        missing = sum(s.missing for s in found)
        print("\n".join(f"  {line}" for line in render_devices(every, missing)))
    return 0


def _sweep(args: argparse.Namespace) -> SweepConfig:
    if args.config is not None:
        path = Path(args.config)
        if not path.exists():
            raise InputError(f"no sweep config at {path}")
        return SweepConfig.from_json(path.read_text())
    return get_sweep(args.name, args.scale)


def _options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The execution options the flags ask for (experiments.runner.EXECUTION_OPTIONS)."""
    options: dict[str, Any] = {
        name: True
        for name, on in (
            ("cuda_graph", args.cuda_graph),
            ("device_sampler", args.device_sampler),
            ("compile", args.compile),
        )
        if on
    }
    if args.guard_interval is not None:
        if args.guard_interval < 1:  # before any run starts, not as a failed row per run
            raise InputError(f"--guard-interval must be at least 1, got {args.guard_interval}")
        options["guard_interval"] = args.guard_interval
    return options or None


def table_of(args: argparse.Namespace) -> tuple[SweepConfig, SweepStatus, Table]:
    """What ``--table`` prints for these arguments: the sweep, its status and its table (the
    README's generated tables are made by this too: experiments/readme_tables.py)."""
    if args.name == "all" and args.config is None:
        raise InputError("--table reads one sweep; give its NAME instead of 'all'")
    sweep = _sweep(args)
    found = sweep_status(sweep, args.results, parse_only(args.only))
    return sweep, found, results_table(found.rows, args.metric, sweep.name)


def table(args: argparse.Namespace) -> int:
    """``--table``: the finished runs, a line per configuration (experiments/table.py)."""
    sweep, found, result = table_of(args)
    if args.json:
        print(json.dumps({"sweep": sweep.name, "scale": sweep.scale, **result.to_dict()}))
        return 0
    print(f"{sweep.name}/{sweep.scale}: {found.ok} finished runs ({found.path})\n")
    print(result.markdown())
    return 0


def run(args: argparse.Namespace) -> int:
    if args.status and args.table:
        raise InputError("give --status or --table, not both")
    if args.metric and not args.table:
        raise InputError("--metric goes with --table")
    if args.status:
        return status(args)
    if args.table:
        return table(args)
    if args.json:
        raise InputError(
            "--json goes with --status or --table (a sweep prints its report as JSON anyway)"
        )
    sweep = _sweep(args)
    only = parse_only(args.only)
    keep_freed_memory()  # this command owns its process (one worker runs in it); checks the env
    if args.list:
        for config in select_runs(sweep.runs(), only):
            print(json.dumps(config, sort_keys=True))
        return 0
    if args.runs_per_worker > 1 and args.executor == "local":
        # said where it is used, not only in the README: a user should not lose a GPU lease
        print(
            "parrots sweep: note: --runs-per-worker > 1 (threads) has not been seen to work on "
            "a GPU: on an H100 a threaded layout did not finish (README, 'Concurrency'); "
            "--workers alone is the tested way to run several at once",
            file=sys.stderr,
        )
    try:
        report = run_sweep(
            sweep,
            workers=args.workers,
            runs_per_worker=args.runs_per_worker,
            executor=args.executor,
            results_dir=args.results,
            scratch_dir=args.scratch,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
            submitit_cluster=args.cluster,
            only=only,
            stop_after=args.stop_after,
            options=_options(args),
        )
    except KeyboardInterrupt:
        print(
            "parrots sweep: stopped; the runs in flight were stopped too (local workers "
            "ended, cluster jobs cancelled). Run the same command again: it skips the "
            "finished runs and resumes the others from their checkpoints",
            file=sys.stderr,
        )
        raise
    print(json.dumps(report.to_dict()))
    return 0
