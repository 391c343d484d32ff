"""Several trainings in one process, on threads, while one of them captures a CUDA graph.

A sweep worker may train several runs at once on threads, each on its own CUDA stream
(``experiments.runner``, ``runs_per_worker``): kernels of different streams of one process can
run side by side on the GPU, while kernels of different processes time-slice it. The catch
is graph capture. ``torch.cuda.make_graphed_callables`` captures in CUDA's *global* mode
and synchronises the device first: while it captures, an allocation, a synchronisation or a
host read by *any* thread of the process invalidates the capture (and fails that thread's
call). A run captures once, on its first batch, so the fix is a gate:

* each run holds the gate while it works (:meth:`CaptureGate.hold`, re-entrant per thread);
* a run about to capture asks for it alone (:meth:`CaptureGate.capture`): new holders wait,
  and it waits until every other holder has reached a safe point;
* a safe point (:meth:`CaptureGate.pause`, between two training steps) is where a holder
  lets a waiting capture go first: it lets go of the gate and takes it back afterwards.

A holder's kernels already queued keep running during another run's capture (a kernel
launch made earlier is not an API call made during capture); the capture's device-wide
synchronise waits for them. Capture requests go first (new holders wait while one is
waiting), so a capture cannot be starved; two captures take turns. Without threads the gate
costs a lock per step and never waits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class CaptureGate:
    """A shared/exclusive lock whose shared holders give way only at safe points."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holders = 0  # threads holding the gate (each counted once, re-entrant)
        self._waiting = 0  # captures waiting for the holders to pause
        self._capturing = False
        self._depth = threading.local()  # this thread's re-entrant hold count

    def _mine(self) -> int:
        return getattr(self._depth, "n", 0)

    def _busy(self) -> bool:
        return self._capturing or self._waiting > 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the gate for a piece of device work (re-entrant). A holder must never block
        on another thread that needs the gate, nor call :meth:`hold` or :meth:`pause` from
        inside its own :meth:`capture`."""
        if self._mine() == 0:
            with self._cond:
                while self._busy():
                    self._cond.wait()
                self._holders += 1
        self._depth.n = self._mine() + 1
        try:
            yield
        finally:
            self._depth.n -= 1
            if self._depth.n == 0:
                with self._cond:
                    self._holders -= 1
                    self._cond.notify_all()

    def pause(self) -> None:
        """A safe point: if a capture waits, let it go first, then take the gate back."""
        if self._mine() == 0:
            return
        with self._cond:
            if not self._busy():
                return
            self._holders -= 1
            self._cond.notify_all()
            try:
                while self._busy():
                    self._cond.wait()
            finally:  # also when an exception lands in the wait: the count stays right
                self._holders += 1

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Be alone with the device: every other holder paused or gone, no new one in."""
        mine = self._mine() > 0
        with self._cond:
            self._waiting += 1
            if mine:  # our own hold must not count against us
                self._holders -= 1
                self._cond.notify_all()
            try:
                while self._capturing or self._holders > 0:
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: undo, as if never asked
                self._waiting -= 1
                if mine:
                    self._holders += 1
                self._cond.notify_all()
                raise
            self._waiting -= 1
            self._capturing = True
        try:
            yield
        finally:
            with self._cond:
                self._capturing = False
                if mine:  # we go on with our step, as a holder again
                    self._holders += 1
                self._cond.notify_all()

    def state(self) -> tuple[int, int, bool]:
        """(holders, waiting captures, capturing): for tests and debugging."""
        with self._cond:
            return self._holders, self._waiting, self._capturing


GATE = CaptureGate()  # the process's one gate: every trainer in the process shares it
