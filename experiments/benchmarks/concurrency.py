"""Sweep throughput: R training runs one at a time vs W·T at once on the same device.

Both passes run the same R length-2 path runs (seeds 0..R-1, one model size) through
``experiments.runner.run_sweep`` into a throw-away folder: first with one worker (the runs
in the runner's own process, one after another), then with W spawned workers sharing the
device, each training T runs at once on threads with a CUDA stream each
(``--runs-per-worker``; :mod:`experiments.thread_workers` says why streams, not processes,
are what can overlap on one GPU). ``--also 1x8,2x4`` times more layouts against the same
sequential pass, each with its own speed-up. Small models are launch-bound on a GPU
(research/probes.md), so concurrent runs fill the gaps; the ratio of runs/hour is the
measured speed-up.

Each spawned worker pays its start once (imports, and a CUDA context on a GPU), which the
sequential pass pays only once in all; with R = W every worker runs a single run and that
start weighs on each of them, so measure with R several times W and runs as long as a
sweep's. Each pass also reports ``mean_run_s``, the runs' own mean wall time (from model
construction to the last evaluation, worker start excluded): if W runs at once each take
about W times as long as alone, the device is saturated; if they take about as long, the
pass's time went elsewhere (worker start, the host), and longer runs or more of them per
worker are what the measurement needs. ``--sampler device``, ``--cuda-graph`` and
``--compile`` pass the trainer's options through, so one command measures what each does to
runs/hour.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", type=int, default=16, help="R: runs in each pass")
    p.add_argument("--workers", type=int, default=8, help="W: worker processes, second pass")
    p.add_argument(
        "--runs-per-worker",
        type=int,
        default=1,
        help="T: runs each worker trains at once on threads (own CUDA stream each)",
    )
    p.add_argument(
        "--also",
        default="",
        metavar="WxT,...",
        help="more concurrent layouts to time after the first, against the same sequential "
        "pass (e.g. 1x8,2x4): one command, one baseline",
    )
    p.add_argument("--vertices", type=int, default=16)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--sampler", default="numpy", choices=("numpy", "device"))
    p.add_argument("--cuda-graph", action="store_true", help="replay steps as CUDA graphs")
    p.add_argument("--compile", action="store_true", help="compile each run with torch.compile")
    p.add_argument(
        "--pass-timeout",
        type=float,
        default=None,
        metavar="S",
        help="give each concurrent pass at most S seconds: a pass still running then has its "
        "processes' stacks printed (SIGUSR1) and is killed and reported as stalled, and the "
        "next layout runs",
    )
    p.add_argument(
        "--guard-interval",
        type=int,
        default=1,
        metavar="N",
        help="steps between each run's guard reads from the device (1: every step)",
    )


def _timed_pass(sweep: Any, workers: int, per: int) -> tuple[float, list[dict[str, Any]]]:
    """Run the sweep into a throw-away folder: (seconds, its rows)."""
    from experiments.results import read_rows
    from experiments.runner import run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = run_sweep(
            sweep,
            workers=workers,
            runs_per_worker=per,
            results_dir=tmp,
            scratch_dir=tmp,
            progress=False,
        )
        seconds = time.perf_counter() - start
        # the rows go with the temporary folder: read them while they exist
        return seconds, read_rows(report.path)


def _pass_child(sweep_json: str, workers: int, per: int, conn: Any) -> None:
    """In a child process that leads its own process group (its workers join it). Out of
    the bench's group, a kill of the bench no longer reaches it: it leaves when the bench
    dies (``exit_with_parent``, which also answers SIGUSR1 with every thread's stack), and
    its workers leave when it does."""
    from experiments.sweep import SweepConfig
    from experiments.thread_workers import exit_with_parent

    os.setpgrp()
    exit_with_parent(os.getppid())
    conn.send(_timed_pass(SweepConfig.from_json(sweep_json), workers, per))


def _kill_group(child: Any, stacks: bool) -> None:
    """SIGKILL the child's process group (first SIGUSR1 for the stacks, if asked), and the
    child itself, also if it had not yet made its group."""
    group = child.pid
    with contextlib.suppress(ProcessLookupError):
        if stacks:
            os.killpg(group, signal.SIGUSR1)  # every thread's stack, in every process
            time.sleep(2.0)  # time to print them
        os.killpg(group, signal.SIGKILL)
    child.kill()


def _timed_pass_within(
    sweep: Any, workers: int, per: int, timeout: float
) -> tuple[float, list[dict[str, Any]]] | None:
    """:func:`_timed_pass` in a child process, or None if it has not ended after ``timeout``
    seconds: then every process of the pass prints its threads' stacks (SIGUSR1, see
    ``experiments.thread_workers.exit_with_parent``) and the pass is killed. The seconds are
    timed inside the child, so its own start is not counted."""
    from multiprocessing import get_context

    ctx = get_context("spawn")
    mine, theirs = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_pass_child, args=(sweep.to_json(), workers, per, theirs))
    child.start()
    theirs.close()
    try:
        if mine.poll(timeout):
            return mine.recv()
        _kill_group(child, stacks=True)
        return None
    except EOFError:  # the child died without an answer
        child.join(timeout=10)
        raise RuntimeError(f"the pass's process ended with code {child.exitcode}") from None
    except BaseException:  # Ctrl-C while waiting: the pass must not outlive the bench
        _kill_group(child, stacks=False)
        raise
    finally:
        child.join(timeout=10)
        mine.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    from experiments.sweep import SweepConfig
    from theory.errors import InputError

    guard = getattr(args, "guard_interval", 1)
    if min(args.runs, args.workers, args.runs_per_worker, args.steps, guard) < 1:
        raise InputError(
            "--runs, --workers, --runs-per-worker, --steps and --guard-interval must be positive"
        )
    layouts = [("sequential", 1, 1), ("concurrent", args.workers, args.runs_per_worker)]
    for part in filter(None, getattr(args, "also", "").split(",")):
        try:
            w, t = (int(v) for v in part.lower().split("x"))
        except ValueError as err:
            raise InputError(f"--also wants layouts like 1x8,2x4, got {part!r}") from err
        if min(w, t) < 1:
            raise InputError(f"--also: workers and threads must be positive, got {part!r}")
        if any(name == f"{w}x{t}" for name, _, _ in layouts):
            raise InputError(f"--also names {w}x{t} twice")
        layouts.append((f"{w}x{t}", w, t))
    fixed = {
        "vertices": args.vertices,
        "width": args.width,
        "layers": args.layers,
        "heads": 2,
        "experts": 1,
        "top_k": 1,
        "steps": args.steps,
        "batch": args.batch,
        "lr": 1e-3,
        "eval_size": 1024,
        "eval_interval": args.steps,
        "threads": 1,
        "device": args.device,
        "sampler": args.sampler,
        "cuda_graph": args.cuda_graph,
        "compile": args.compile,
        "guard_interval": guard,
    }
    timeout = getattr(args, "pass_timeout", None)
    if timeout is not None and not timeout > 0:
        raise InputError("--pass-timeout must be a positive number of seconds")
    passes: dict[str, dict[str, Any]] = {}
    for name, workers, per in layouts:
        sweep = SweepConfig(
            name=f"concurrency_{name}",
            scale="tiny",
            task="length2",
            fixed=fixed,
            seeds=tuple(range(args.runs)),
        )
        if timeout is None or name == "sequential":
            seconds, rows = _timed_pass(sweep, workers, per)
        else:
            timed = _timed_pass_within(sweep, workers, per, timeout)
            if timed is None:
                print(f"{name}: stalled, killed after {timeout:g} s", file=sys.stderr, flush=True)
                passes[name] = {"workers": workers, "runs_per_worker": per}
                passes[name]["stalled_after_s"] = timeout
                continue
            seconds, rows = timed
        failed = [r for r in rows if r.get("status") != "ok"]
        walls = [float(r["wall_s"]) for r in rows if isinstance(r.get("wall_s"), (int, float))]
        if failed and name in ("sequential", "concurrent"):
            first = failed[0]
            raise RuntimeError(
                f"{len(failed)} of {args.runs} runs failed in the {name} pass; the first: "
                f"{first.get('error')}\n{first.get('traceback', '')}"
            )
        if failed:  # an --also layout: keep what the others measured, say why this one failed
            passes[name] = {"workers": workers, "runs_per_worker": per, "failed": len(failed)}
            passes[name]["error"] = str(failed[0].get("error"))[:300]
            continue
        passes[name] = {
            "workers": workers,
            "runs_per_worker": per,
            "seconds": round(seconds, 2),
            "runs_per_hour": round(args.runs * 3600 / seconds, 1),
            "mean_run_s": round(sum(walls) / len(walls), 3) if walls else None,
        }
        # each pass as it ends: a bench stopped later still leaves what it measured
        print(f"{name}: {passes[name]}", file=sys.stderr, flush=True)
    import torch

    alone = passes["sequential"]["seconds"]
    concurrent = passes["concurrent"].get("seconds")  # None: stalled
    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    return {
        "benchmark": "concurrency",
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "config": fixed,
        "runs": args.runs,
        "sequential": passes.pop("sequential"),
        "concurrent": passes.pop("concurrent"),
        "speedup": None if concurrent is None else round(alone / concurrent, 2),
        # the --also layouts, each with its speed-up over the same sequential pass
        "also": [  # a failed or stalled layout keeps its reason instead of a speed-up
            {**p, "speedup": round(alone / p["seconds"], 2)} if "seconds" in p else p
            for p in passes.values()
        ],
    }
