"""Several runs at once in each worker process, on threads, each with its own CUDA stream.

Why: on one GPU, kernels of different *processes* time-slice the device (no two contexts
run at once without MPS), so W worker processes only fill each other's idle gaps; a CUDA-
graphed run leaves few, and 8 graphed workers measured 1.07× one at a time (README,
"Concurrency"). Kernels of different *streams of one process* can run side by side. So a
worker here trains up to T runs at once, each on a thread whose current stream is its own;
runs that capture graphs share the process's capture gate (``models.capture_gate``), held
by each run from its set-up to its row.
Python holds one core per process at a time (the GIL), so this pays when a step is mostly
device time and few launches, which is what a graphed step is; W processes of T threads
combine both kinds of overlap.

:class:`ThreadedWorkers` has the part of ``concurrent.futures.ProcessPoolExecutor`` the
runner uses: ``submit`` returns a :class:`~concurrent.futures.Future`. Each worker is a
spawned process (exits within a second if the runner dies) with a
:class:`~concurrent.futures.ThreadPoolExecutor` of T threads. A worker that dies (an OOM
kill) fails the runs it held with ``BrokenProcessPool`` ("worker died"); the other workers
go on, and ``submit`` raises ``BrokenProcessPool`` only when none is left.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

POLL_S = 0.2  # how often the receiver looks for a dead worker while no result comes


def exit_with_parent(parent: int) -> None:
    """In a worker: leave (within a second) when the runner that spawned us dies."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@contextmanager
def own_stream() -> Iterator[None]:
    """Make a fresh CUDA stream this thread's current one (nothing without CUDA). Every run
    of a worker must leave the legacy default stream, which would serialise it with all the
    others."""
    import torch

    if not torch.cuda.is_available():
        yield
        return
    with torch.cuda.stream(torch.cuda.Stream()):
        yield


def _serve(inbox: Any, results: Any, threads: int, parent: int) -> None:
    """A worker's main loop: run each (key, fn, args) from ``inbox`` on one of ``threads``
    threads and put (key, ok, value or error text) on ``results``; stop at ``None``."""
    exit_with_parent(parent)

    from models.capture_gate import GATE

    def job(key: int, fn: Callable[..., Any], args: tuple) -> None:
        try:
            # held for the whole run, set-up included (a device sampler's first draw, the
            # model's move to the device): another run's capture waits for a safe point
            with own_stream(), GATE.hold():
                value = fn(*args)
        except BaseException as err:  # reported to the runner, which records the run
            results.put((key, False, f"{type(err).__name__}: {err}"))
        else:
            results.put((key, True, value))

    with ThreadPoolExecutor(threads) as pool:
        while (item := inbox.get()) is not None:
            pool.submit(job, *item)


class ThreadedWorkers:
    """``workers`` spawned processes, each running up to ``threads`` submitted calls at once."""

    def __init__(self, workers: int, threads: int) -> None:
        if workers < 1 or threads < 1:
            raise ValueError(f"workers and threads must be positive, got {workers}, {threads}")
        self.workers, self.threads = workers, threads

    def __enter__(self) -> ThreadedWorkers:
        ctx = get_context("spawn")
        self._results = ctx.Queue()
        self._inboxes = [ctx.Queue() for _ in range(self.workers)]
        self._procs = [
            ctx.Process(
                target=_serve,
                args=(inbox, self._results, self.threads, os.getpid()),
                daemon=True,
            )
            for inbox in self._inboxes
        ]
        for p in self._procs:
            p.start()
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[int, Future[Any]]] = {}  # key -> (worker, future)
        self._load = [0] * self.workers
        self._dead: set[int] = set()
        self._keys = itertools.count()
        self._stop = threading.Event()
        self._receiver = threading.Thread(target=self._receive, daemon=True)
        self._receiver.start()
        return self

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the least loaded live worker."""
        with self._lock:
            alive = [w for w in range(self.workers) if w not in self._dead]
            if not alive:
                raise BrokenProcessPool("every worker process died")
            w = min(alive, key=lambda i: self._load[i])
            key, fut = next(self._keys), Future[Any]()
            self._pending[key] = (w, fut)
            self._load[w] += 1
        self._inboxes[w].put((key, fn, args))
        return fut

    def _deliver(self, key: int, ok: bool, value: Any) -> None:
        with self._lock:
            if key not in self._pending:  # its worker was already given up for dead
                return
            w, fut = self._pending.pop(key)
            self._load[w] -= 1
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(RuntimeError(value))

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                self._deliver(*self._results.get(timeout=POLL_S))
                continue
            except queue.Empty:
                pass
            for w, p in enumerate(self._procs):
                if w in self._dead or p.is_alive():
                    continue
                self._drain()  # results it sent before it died still count
                with self._lock:
                    self._dead.add(w)
                    lost = [(k, f) for k, (i, f) in self._pending.items() if i == w]
                    for k, _ in lost:
                        del self._pending[k]
                    self._load[w] = 0
                for _, fut in lost:
                    fut.set_exception(
                        BrokenProcessPool(f"worker died (pid {p.pid}, exit code {p.exitcode})")
                    )

    def _drain(self) -> None:
        while True:
            try:
                self._deliver(*self._results.get_nowait())
            except queue.Empty:
                return

    def __exit__(self, *exc: object) -> None:
        for w, inbox in enumerate(self._inboxes):
            if w not in self._dead:
                inbox.put(None)  # finish what it holds, then stop
        for p in self._procs:
            p.join(timeout=None if exc[0] is None else 5.0)
            if p.is_alive():
                p.terminate()
                p.join()
        self._stop.set()
        self._receiver.join()
        self._drain()
