"""Several runs at once in each worker process, on threads, each with its own CUDA stream.

Why: on one GPU, kernels of different *processes* time-slice the device (no two contexts
run at once without MPS), so W worker processes only fill each other's idle gaps; a CUDA-
graphed run leaves few, and 8 graphed workers measured 1.07× one at a time (README,
"Concurrency"). Kernels of different *streams of one process* can run side by side. So a
worker here trains up to T runs at once, each thread with a CUDA stream of its own (made
once per thread, from the high-priority pool: ``torch.cuda.Stream()`` hands out the 32
streams of a pool in turn, and the default-priority pool is also where
``make_graphed_callables`` takes its side streams, so a run's stream is never another's).
Runs that capture graphs share the process's capture gate (``models.capture_gate``), held
by each run from its set-up to its row. Python holds one core per process at a time (the
GIL), so this pays when a step is mostly device time and few launches, which is what a
graphed step is; W processes of T threads combine both kinds of overlap.

:class:`ThreadedWorkers` has the part of ``concurrent.futures.ProcessPoolExecutor`` the
runner uses: ``submit`` returns a :class:`~concurrent.futures.Future`, and ``capacity`` says
how many calls may be in flight. Each worker is a spawned process (it exits within a second
if the runner dies) with a :class:`~concurrent.futures.ThreadPoolExecutor` of T threads,
and its own pipe back to the runner: an OOM kill in the middle of a write can tear only the
dead worker's pipe, never another's. A worker that dies fails the runs it held with
``BrokenProcessPool`` ("worker died"); the other workers go on, the capacity shrinks by T,
and ``submit`` raises ``BrokenProcessPool`` only when none is left. Results and arguments
are pickled inside the call's own error handling, so an unpicklable one fails its run
instead of leaving it waiting forever.
"""

from __future__ import annotations

import itertools
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any

POLL_S = 0.2  # the longest the receiver waits before it looks for dead workers again
EXIT_S = 10.0  # on an error, how long all workers together get to stop before termination


def exit_with_parent(parent: int) -> None:
    """In a worker: leave (within a second) when the runner that spawned us dies; and, for
    a worker that seems stuck, print every thread's stack to stderr on SIGUSR1, and every
    ``PARROTS_HANG_DUMP_S`` seconds if that is set (``faulthandler``: works while Python
    code is blocked, in a lock or in a CUDA call)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    import faulthandler

    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    dump_s = float(os.environ.get("PARROTS_HANG_DUMP_S") or 0)
    if dump_s > 0:
        faulthandler.dump_traceback_later(dump_s, repeat=True)


_local = threading.local()


def _own_stream_init() -> None:
    """Thread-pool initializer: give this thread its CUDA stream (nothing without CUDA)."""
    import torch

    if torch.cuda.is_available():
        _local.stream = torch.cuda.Stream(priority=-1)  # the high-priority pool (docstring)


def _run_on_own_stream(fn: Callable[..., Any], args: tuple) -> Any:
    import torch

    stream = getattr(_local, "stream", None)
    if stream is None:
        return fn(*args)
    with torch.cuda.stream(stream):
        return fn(*args)


def _serve(inbox: Any, results: Connection, threads: int, parent: int) -> None:
    """A worker's main loop: run each (key, pickled (fn, args)) from ``inbox`` on one of
    ``threads`` threads and send pickled (key, ok, value or error text) on ``results``;
    stop at ``None``."""
    exit_with_parent(parent)

    from models.capture_gate import GATE

    send = threading.Lock()  # one pipe, T threads

    def job(key: int, payload: bytes) -> None:
        try:
            fn, args = pickle.loads(payload)
            # held for the whole run, set-up included (a device sampler's first draw, the
            # model's move to the device): another run's capture waits for a safe point
            with GATE.hold():
                value = _run_on_own_stream(fn, args)
            message = pickle.dumps((key, True, value))
        except BaseException as err:  # the call itself raised: the runner records the run
            message = pickle.dumps((key, False, f"the call raised {type(err).__name__}: {err}"))
        with send:
            results.send_bytes(message)

    with ThreadPoolExecutor(threads, initializer=_own_stream_init) as pool:
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
        self._inboxes = [ctx.Queue() for _ in range(self.workers)]
        self._readers: list[Connection] = []
        self._procs = []
        for inbox in self._inboxes:
            reader, writer = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_serve, args=(inbox, writer, self.threads, os.getpid()))
            p.start()
            writer.close()  # the worker's copy is the only one: its death is our EOF
            self._readers.append(reader)
            self._procs.append(p)
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[int, Future[Any]]] = {}  # key -> (worker, future)
        self._load = [0] * self.workers
        self._dead: set[int] = set()
        self._keys = itertools.count()
        self._stop = threading.Event()
        self._receiver = threading.Thread(target=self._receive, daemon=True)
        self._receiver.start()
        return self

    def capacity(self) -> int:
        """Calls that may be in flight at once: T per live worker."""
        with self._lock:
            return self.threads * (self.workers - len(self._dead))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on the least loaded live worker."""
        payload = pickle.dumps((fn, args))  # here, so an unpicklable call fails at once
        with self._lock:
            alive = [
                w for w in range(self.workers) if w not in self._dead and self._procs[w].is_alive()
            ]
            if not alive:
                raise BrokenProcessPool("every worker process died")
            w = min(alive, key=lambda i: self._load[i])
            key, fut = next(self._keys), Future[Any]()
            self._pending[key] = (w, fut)
            self._load[w] += 1
        self._inboxes[w].put((key, payload))
        return fut

    def _deliver(self, message: bytes) -> None:
        key, ok, value = pickle.loads(message)
        with self._lock:
            if key not in self._pending:  # its worker was already given up for dead
                return
            w, fut = self._pending.pop(key)
            self._load[w] -= 1
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(RuntimeError(value))

    def _bury(self, w: int) -> None:
        """Worker ``w`` is gone: fail every call it held."""
        p = self._procs[w]
        p.join(timeout=1.0)  # its exit code, if it has one yet
        with self._lock:
            if w in self._dead:
                return
            self._dead.add(w)
            lost = [(k, f) for k, (i, f) in self._pending.items() if i == w]
            for k, _ in lost:
                del self._pending[k]
            self._load[w] = 0
        for _, fut in lost:
            fut.set_exception(
                BrokenProcessPool(f"worker died (pid {p.pid}, exit code {p.exitcode})")
            )

    def _receive(self) -> None:
        try:
            while not self._stop.is_set():
                live = {self._readers[w]: w for w in range(self.workers) if w not in self._dead}
                if not live:
                    return
                # a dead worker's pipe reads EOF (it held the only write end), after every
                # result it sent before it died: those still count
                for reader in wait(list(live), timeout=POLL_S):
                    try:
                        message = reader.recv_bytes()  # type: ignore[union-attr]
                    except (EOFError, OSError):
                        self._bury(live[reader])  # type: ignore[index]
                        continue
                    self._deliver(message)
                for w in list(live.values()):  # dead but its pipe not yet at EOF (rare)
                    if not self._procs[w].is_alive() and not self._readers[w].poll():
                        self._bury(w)
        except BaseException as err:  # never leave a future waiting forever
            with self._lock:
                pending = list(self._pending.values())
                self._pending.clear()
            for _, fut in pending:
                if not fut.done():
                    fut.set_exception(BrokenProcessPool(f"the result receiver failed: {err!r}"))
            raise

    def __exit__(self, *exc: object) -> None:
        for w, inbox in enumerate(self._inboxes):
            if w not in self._dead:
                inbox.put(None)  # finish what it holds, then stop
        deadline = None if exc[0] is None else time.monotonic() + EXIT_S
        for p in self._procs:
            p.join(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        for p in self._procs:
            if p.is_alive():
                p.terminate()
                p.join()
        self._stop.set()
        self._receiver.join()
        for inbox in self._inboxes:
            inbox.cancel_join_thread()  # a dead worker's inbox may hold what it never read
        for reader in self._readers:
            reader.close()
