"""The sweep runner: resumable, crash-safe, several runs at once, local or on a cluster.

:func:`run_sweep` expands a :class:`~experiments.sweep.SweepConfig`, skips every run whose id
already has a row in ``<results>/<sweep>/<scale>.jsonl``, and runs the rest, each through
:func:`execute_run` in a worker. One process, the runner, writes the rows, one complete line
per ``append_row`` (a single ``write`` + ``fsync``), so:

* **Killed at any moment** (``kill -9`` included) and restarted, it redoes only the runs that
  had no row: a run finished before the kill has its row on disk (the write was synced); a run
  in flight has none and is run again, resuming from the trainer's last checkpoint in its
  scratch folder. A kill during the write can leave a torn last line; the restarted runner
  cuts it off (:func:`experiments.results.repair_torn_tail`) before appending, and the run is
  redone. No row is ever written twice: the runner skips ids it has already written, and an
  exclusive lock (``flock``, released by the kernel when the holder dies) on the results file
  (:func:`lock_path`), and another on the scratch folder of checkpoints, keeps a second
  runner off either (two runners given different ``--scratch`` folders would otherwise both
  write one file).
* **A failing run** gets a row with ``"status": "failed"`` and its error, and the sweep goes
  on. Failed runs are not retried on restart unless ``retry_failed`` (their new row then
  supersedes the old one: readers take the last row of a run id).
* **Executors.** ``local`` with ``workers=1`` runs in the runner's process; with more, a
  ``concurrent.futures.ProcessPoolExecutor`` of spawned workers (each exits within a second
  if the runner dies), handed one run per free worker; if a worker dies (an OOM kill), every
  run it took down and every run not yet handed out is recorded as failed ("worker died"),
  as a cluster's lost job is. With ``runs_per_worker`` T > 1 each worker trains T runs at
  once on threads, each with its own CUDA stream (:mod:`experiments.thread_workers`: streams
  of one process share a GPU, processes only time-slice it); a worker that dies fails the
  runs it held, and the others go on. ``submitit`` sends each run as a job through submitit
  (``pip install 'mixture-of-parrots[cluster]'``): SLURM when available, else submitit's own
  local executor; rows are still written by the runner, from the jobs' results.
* **A time budget** (``stop_after`` seconds, local executor): no run starts after it; runs
  already started finish and write their rows, the rest wait for the next invocation. On a
  machine lent for a fixed time this turns a kill that would lose every run in flight into
  a clean stop.

A row::

    {"sweep", "scale", "run_id", "status": "ok" | "failed", "config", "metrics",
     "curve": {"evals": [[step, accuracy], ...], "final", "best", "first_step_at_0.9"},
     "seed", "wall_s", "error", "provenance": {git_sha, device, versions (torch …), host, time}}

``wall_s`` is the last sitting's: a run resumed from a checkpoint says so in
``metrics.resumed_from`` (the step it resumed at), and ``metrics.seconds_total`` adds the
trainer's seconds over every sitting (None for a checkpoint that predates counting them).

Scratch (checkpoints, the trainer's metrics) lives under ``runs/sweeps/`` (git-ignored),
never under ``experiments/results/``; a run's scratch folder is removed once its row is
written.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from experiments import host_malloc
from experiments.results import (
    RESULTS_DIR,
    append_row,
    git_sha,
    latest_rows,
    provenance,
    repair_torn_tail,
)
from experiments.sweep import SweepConfig, run_id
from experiments.thread_workers import ThreadedWorkers, exit_with_parent
from theory.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SCRATCH_DIR = REPO / "runs" / "sweeps"  # git-ignored ("runs/")
EXECUTORS = ("local", "submitit")


def results_path(sweep: SweepConfig, results_dir: str | Path = RESULTS_DIR) -> Path:
    return Path(results_dir) / sweep.name / f"{sweep.scale}.jsonl"


# -- one run -------------------------------------------------------------------------------


def _curve_summary(evals: list[list[float]]) -> dict[str, Any]:
    accs = [a for _, a in evals]
    first = next((int(s) for s, a in evals if a >= 0.9), None)
    return {
        "evals": evals,
        "final": accs[-1] if accs else None,
        "best": max(accs) if accs else None,
        "first_step_at_0.9": first,
    }


# how a run executes, not what it computes: ``device_sampler`` draws the same distribution
# of graphs with torch on the device (other instances, the same experiment)
EXECUTION_OPTIONS = ("cuda_graph", "device_sampler", "compile", "guard_interval")


def execute_run(
    config: dict[str, Any],
    sweep: str,
    scale: str,
    scratch: str,
    code_sha: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one config and return its row (never raises for a failure of the run itself).

    ``code_sha``: the commit the runner started from (its workers import that code); it
    replaces the SHA ``provenance`` reads at write time, which a commit made while a long
    sweep runs would otherwise move. ``options`` (names in ``EXECUTION_OPTIONS``) reach the
    task with the config but are not part of it: they change how a run executes, not what
    it computes, so the run keeps its id and a sweep half run without them finishes with
    them. The row records them under ``"options"``."""
    from experiments.tasks import TASKS

    start = time.perf_counter()
    rid = run_id(config)
    base: dict[str, Any] = {"sweep": sweep, "scale": scale, "run_id": rid, "config": config}
    base["seed"] = config.get("seed")
    if options:
        base["options"] = dict(options)
    try:
        if "threads" in config:
            import torch

            torch.set_num_threads(int(config["threads"]))
        task = TASKS.get(config.get("task", ""))
        if task is None:
            raise InputError(f"unknown task {config.get('task')!r}")
        metrics, evals = task({**config, **(options or {})}, Path(scratch) / rid)
        row = {
            **base,
            "status": "ok",
            "metrics": metrics,
            "curve": _curve_summary(evals),
            "error": None,
        }
        device = metrics.get("device")
    except Exception as err:  # a failed run is a result too; the sweep goes on
        tail = traceback.format_exc(limit=-3)
        row = {
            **base,
            "status": "failed",
            "metrics": {},
            "curve": _curve_summary([]),
            "error": f"{type(err).__name__}: {err}",
            "traceback": tail[-2000:],
        }
        device = _requested_device(config)  # where it failed: the card, not the host's CPU
    row["wall_s"] = round(time.perf_counter() - start, 3)
    row["provenance"] = provenance(device if isinstance(device, str) else None)
    row["provenance"]["malloc"] = host_malloc.state()
    if code_sha is not None:
        row["provenance"]["git_sha"] = code_sha
    return row


def execute_run_in_worker(config: dict[str, Any], *args: Any) -> dict[str, Any]:
    """:func:`execute_run` in a process of the sweep's own (a worker, a cluster job), which
    may therefore keep the memory it frees (:mod:`experiments.host_malloc`)."""
    host_malloc.keep_freed_memory()
    return execute_run(config, *args)


# -- executors -----------------------------------------------------------------------------


class Handle:
    """What an executor returns per run: ``done()`` and ``result()`` (a Future or a job)."""

    def done(self) -> bool:  # pragma: no cover - protocol
        raise NotImplementedError

    def result(self) -> dict[str, Any]:  # pragma: no cover - protocol
        raise NotImplementedError


@dataclass
class LocalExecutor:
    """``workers`` spawned processes on this machine (CPU, or one GPU shared by them), each
    running ``runs_per_worker`` runs at once on threads (:mod:`experiments.thread_workers`)."""

    workers: int
    runs_per_worker: int = 1

    def __enter__(self) -> LocalExecutor:
        if self.runs_per_worker > 1:
            self._pool: Any = ThreadedWorkers(self.workers, self.runs_per_worker).__enter__()
            return self
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=get_context("spawn"),
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if isinstance(self._pool, ThreadedWorkers):
            self._pool.__exit__(*exc)
        elif exc[0] is None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        else:
            # Ctrl-C or an error in the runner: stop the runs in flight instead of waiting
            # (hours, for training runs) for them to end; each run resumes from its last
            # checkpoint when the sweep is run again, as after a kill
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join(timeout=5)

    def capacity(self) -> int:
        """Runs that may be in flight now (threaded workers that died no longer count)."""
        if isinstance(self._pool, ThreadedWorkers):
            return self._pool.capacity()
        return self.workers

    def submit(self, fn: Callable[..., dict[str, Any]], *args: Any) -> Any:
        return self._pool.submit(fn, *args)


@dataclass
class SubmititExecutor:
    """Each run a submitit job: SLURM where ``sbatch`` exists (``cluster=None``), or
    ``cluster="local"`` / ``"debug"`` to test the path on one machine."""

    folder: Path
    cluster: str | None = None
    parameters: dict[str, Any] | None = None

    def __enter__(self) -> SubmititExecutor:
        try:
            import submitit
        except ImportError as err:
            raise InputError(
                "--executor submitit needs the 'submitit' package: "
                "pip install submitit (or pip install 'mixture-of-parrots[cluster]')"
            ) from err
        self._executor = submitit.AutoExecutor(folder=str(self.folder), cluster=self.cluster)
        params = {"timeout_min": 60, **(self.parameters or {})}
        self._executor.update_parameters(**params)
        self._jobs: list[Any] = []
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            return
        # Ctrl-C or an error in the runner: its jobs would run on unrecorded, and a rerun
        # would submit them again into the same scratch folders; cancel those not done
        for job in self._jobs:
            try:
                if not job.done():
                    job.cancel(check=False)
            except Exception:  # a job the cluster has already forgotten: nothing to cancel
                pass

    def submit(self, fn: Callable[..., dict[str, Any]], *args: Any) -> Any:
        job = self._executor.submit(fn, *args)
        self._jobs.append(job)
        return job


# -- the sweep -----------------------------------------------------------------------------


def lock_path(results: Path) -> Path:
    """The lock file of a results file: ``paper.jsonl`` -> ``paper.jsonl.lock`` (git-ignored)."""
    return results.with_name(results.name + ".lock")


@contextmanager
def _exclusive(file: Path) -> Iterator[None]:
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise InputError(f"another runner holds {file}; wait for it to finish") from err
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SweepReport:
    path: Path
    total: int
    skipped: int  # already had a row
    ran: int
    failed: int
    seconds: float
    not_started: int = 0  # left for a later invocation by ``stop_after``

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": str(self.path),
            "runs": self.total,
            "skipped": self.skipped,
            "ran": self.ran,
            "failed": self.failed,
            "not_started": self.not_started,
            "seconds": round(self.seconds, 1),
        }


def select_runs(runs: list[dict[str, Any]], only: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The runs whose settings match ``only`` (name -> allowed values; JSON-equal)."""
    if not only:
        return runs
    known = {name for config in runs for name in config}
    unknown = sorted(set(only) - known)
    if unknown:
        raise InputError(f"--only: no run has the setting(s) {unknown}")

    def match(config: dict[str, Any]) -> bool:
        return all(name in config and config[name] in values for name, values in only.items())

    return [c for c in runs if match(c)]


def pending_runs(
    sweep: SweepConfig,
    path: Path,
    retry_failed: bool = False,
    only: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The runs (of those matching ``only``) that still need a row, and how many have one."""
    have = latest_rows(path)
    todo = []
    for config in select_runs(sweep.runs(), only):
        row = have.get(run_id(config))
        if row is None or (retry_failed and row.get("status") != "ok"):
            todo.append(config)
    return todo, len(select_runs(sweep.runs(), only)) - len(todo)


def run_progress(scratch: Path, config: Mapping[str, Any]) -> str | None:
    """``"5750/8000 acc 0.674"`` for a run in flight, from the last line its trainer wrote to
    a ``metrics.jsonl`` in its scratch folder (the newest one: the threshold task trains one
    model after another, each in a subfolder); None before the first line."""
    folder = scratch / run_id(config)
    try:
        files = sorted(folder.rglob("metrics.jsonl"), key=lambda f: f.stat().st_mtime)
    except OSError:  # the run finished and its folder was removed meanwhile
        return None
    if not files:
        return None
    try:
        with open(files[-1], "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the seek, or one being written
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int):
            text = f"{entry['step']}/{config.get('steps', '?')}"
            if isinstance(entry.get("accuracy"), (int, float)):
                text += f" acc {entry['accuracy']:.3f}"
            return text
    return None


class _Watcher:
    """A daemon thread that shows, in the sweep's bar, how far the runs in flight have got
    (:func:`run_progress`), every ``every`` seconds: runs of hours otherwise leave the bar
    still until they end."""

    def __init__(
        self, bar: Any, scratch: Path, every: float = 5.0, shown: int = 3, active: bool = True
    ) -> None:
        self.bar, self.scratch, self.every, self.shown = bar, scratch, every, shown
        self.active = active
        self.failed = 0
        self.lock = threading.Lock()
        self.running: dict[str, dict[str, Any]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="sweep-watcher")

    def started(self, config: dict[str, Any]) -> None:
        with self.lock:
            self.running[run_id(config)] = config

    def finished(self, rid: str, failed: int) -> None:
        with self.lock:
            self.running.pop(rid, None)
            self.failed = failed
        if self.active:
            self.bar.set_postfix_str(self.note(), refresh=False)

    def note(self) -> str:
        with self.lock:
            configs = list(self.running.items())
            failed = self.failed
        parts = [f"failed {failed}"] if failed else []
        for rid, config in configs[: self.shown]:
            where = run_progress(self.scratch, config)
            parts.append(f"{rid[:6]} {where or 'starting'}")
        if len(configs) > self.shown:
            parts.append(f"+{len(configs) - self.shown} more")
        return "; ".join(parts)

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.bar.set_postfix_str(self.note(), refresh=True)

    def start(self) -> None:
        if self.active:
            self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=self.every + 1)


def run_sweep(
    sweep: SweepConfig,
    *,
    workers: int = 1,
    executor: str = "local",
    results_dir: str | Path = RESULTS_DIR,
    scratch_dir: str | Path = SCRATCH_DIR,
    retry_failed: bool = False,
    progress: bool = True,
    submitit_cluster: str | None = None,
    poll_s: float = 0.2,
    only: Mapping[str, Any] | None = None,
    stop_after: float | None = None,
    options: Mapping[str, Any] | None = None,
    progress_every: float = 5.0,
    runs_per_worker: int = 1,
) -> SweepReport:
    """Run every run of ``sweep`` that has no row yet (of those matching ``only``, a slice:
    setting name -> allowed values), starting none after ``stop_after`` seconds, each with
    the execution ``options`` (see :func:`execute_run`); see the module docstring. With
    ``progress``, the bar shows every ``progress_every`` seconds how far the runs in flight
    have got. ``runs_per_worker`` T > 1 (local executor): each worker process trains T runs
    at once on threads, each with its own CUDA stream (:mod:`experiments.thread_workers`)."""
    from tqdm import tqdm

    for name, value in (("workers", workers), ("runs_per_worker", runs_per_worker)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if runs_per_worker > 1 and executor != "local":
        raise InputError("runs_per_worker is for the local executor (a cluster job is one run)")
    if executor not in EXECUTORS:
        raise InputError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if stop_after is not None and not stop_after > 0:
        raise InputError(f"stop_after must be a positive number of seconds, got {stop_after!r}")
    unknown = sorted(set(options or {}) - set(EXECUTION_OPTIONS))
    if unknown:
        raise InputError(f"unknown execution option(s) {unknown}; known: {EXECUTION_OPTIONS}")
    if stop_after is not None and executor != "local":
        raise InputError("stop_after is for the local executor (a cluster queues every job)")
    host_malloc.choice()  # a bad PARROTS_MALLOC is an error here, not in every worker
    started = time.perf_counter()

    def may_start() -> bool:
        return stop_after is None or time.perf_counter() - started < stop_after

    path = results_path(sweep, results_dir)
    scratch = Path(scratch_dir) / sweep.name / sweep.scale
    # Both things a runner owns are locked: its rows (a git-ignored file beside the results, so
    # runners with different scratch folders are still kept apart, and no empty results file
    # is left by a runner that stops early) and its checkpoints (the scratch folder, so runners
    # writing different results files do not resume one checkpoint together).
    with _exclusive(lock_path(path)), _exclusive(scratch / "runner.lock"):
        repair_torn_tail(path)
        spec = path.with_suffix(".sweep.json")
        tmp = spec.with_suffix(".tmp")
        tmp.write_text(sweep.to_json() + "\n")
        os.replace(tmp, spec)
        todo, skipped = pending_runs(sweep, path, retry_failed, only)
        written: set[str] = set()
        failed = 0
        bar = tqdm(
            total=skipped + len(todo),
            initial=skipped,
            desc=f"{sweep.name}/{sweep.scale}",
            disable=not progress,
            file=sys.stderr,
            dynamic_ncols=True,
        )

        def record(row: dict[str, Any]) -> None:
            nonlocal failed
            if row["run_id"] in written:  # never twice, whatever an executor does
                return
            append_row(path, row)
            written.add(row["run_id"])
            failed += row["status"] != "ok"
            if row["status"] == "ok":
                shutil.rmtree(scratch / row["run_id"], ignore_errors=True)
            watcher.finished(row["run_id"], failed)
            bar.update(1)

        args = (sweep.name, sweep.scale, str(scratch), git_sha(), dict(options or {}))
        queue = list(reversed(todo))  # popped from the end: runs start in sweep order
        watcher = _Watcher(bar, scratch, every=progress_every, active=progress)
        try:
            watcher.start()
            if executor == "local" and workers == 1 and runs_per_worker == 1:
                while queue and may_start():
                    config = queue.pop()
                    watcher.started(config)
                    record(execute_run(config, *args))
            else:
                local = executor == "local"
                pool: Any = (
                    LocalExecutor(workers, runs_per_worker)
                    if local
                    else SubmititExecutor(scratch / "submitit", submitit_cluster)
                )
                # locally, one run per free slot (so none starts after ``stop_after``);
                # a cluster gets every job at once and schedules them itself
                everything = len(queue)
                with pool:
                    handles: list[tuple[dict[str, Any], Any]] = []
                    while True:
                        # every worker dead: one more submit raises, and each run left
                        # is recorded as failed, as with a broken process pool
                        cap = max(1, pool.capacity()) if local else everything
                        while queue and len(handles) < cap and may_start():
                            config = queue.pop()
                            try:
                                handle = pool.submit(execute_run_in_worker, config, *args)
                            except BrokenProcessPool as err:  # a worker died: no pool left
                                record(_infrastructure_failure(config, sweep, err))
                                continue
                            handles.append((config, handle))
                            watcher.started(config)
                        if not handles:
                            break
                        still = []
                        for config, handle in handles:
                            if not handle.done():
                                still.append((config, handle))
                                continue
                            try:
                                row = handle.result()
                            except Exception as err:  # the worker/job itself died
                                row = _infrastructure_failure(config, sweep, err)
                            record(row)
                        if len(still) == len(handles):
                            time.sleep(poll_s)
                        handles = still
        finally:
            watcher.close()
            bar.close()
    return SweepReport(
        path,
        skipped + len(todo),
        skipped,
        len(written),
        failed,
        time.perf_counter() - started,
        not_started=len(queue),
    )


def _lost(err: BaseException) -> bool:
    return isinstance(err, BrokenProcessPool) or type(err).__module__.startswith("submitit")


def _requested_device(config: dict[str, Any]) -> str:
    """The device a run asked for, with ``auto`` resolved as the trainer resolves it."""
    device = str(config.get("device", "auto"))
    if device == "auto":
        try:  # a run may fail before anything imported torch
            import torch
        except ImportError:
            return "cpu"
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _infrastructure_failure(
    config: dict[str, Any], sweep: SweepConfig, err: BaseException
) -> dict[str, Any]:
    return {
        "sweep": sweep.name,
        "scale": sweep.scale,
        "run_id": run_id(config),
        "config": config,
        "seed": config.get("seed"),
        "status": "failed",
        "metrics": {},
        "curve": _curve_summary([]),
        # a dead process, or a cluster job lost; anything else is the executor's own failure
        "error": f"{'worker died' if _lost(err) else 'worker failed'}: {type(err).__name__}: {err}",
        "wall_s": None,
        "provenance": provenance(),
    }
