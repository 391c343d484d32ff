"""Threaded workers: calls run on threads of spawned processes, under the capture gate; a
dead worker, an unpicklable result or a raising call fails its own futures, never hangs."""

from __future__ import annotations

import os
import pickle
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from experiments.thread_workers import ThreadedWorkers

WAIT = 60.0  # seconds: a bound that only a hang reaches


def where(sleep: float = 0.0) -> tuple[int, int]:
    """(pid, the capture gate's hold depth of this thread) after ``sleep`` seconds."""
    from models.capture_gate import GATE

    time.sleep(sleep)
    return os.getpid(), GATE._mine()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable() -> object:
    return lambda: None


def fails() -> None:
    raise ValueError("on purpose")


def test_calls_run_in_a_worker_process_holding_the_capture_gate():
    with ThreadedWorkers(1, 2) as pool:
        assert pool.capacity() == 2
        pid, depth = pool.submit(where, 0.1).result(WAIT)
    assert pid != os.getpid() and depth == 1  # held for the whole call


def test_an_unpicklable_result_or_argument_and_a_raising_call_fail_their_own_future():
    with ThreadedWorkers(1, 2) as pool:
        bad = pool.submit(unpicklable)
        raising = pool.submit(fails)
        with pytest.raises(RuntimeError, match=r"the call raised .*(pickle|Pickl)"):
            bad.result(WAIT)
        with pytest.raises(RuntimeError, match="ValueError: on purpose"):
            raising.result(WAIT)
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError), match="pickle"):
            pool.submit(where, lambda: None)  # refused before anything is queued
        assert pool.submit(where).result(WAIT)[1] == 1  # the worker is fine


def test_a_dead_worker_is_noticed_while_the_other_keeps_sending_results():
    with ThreadedWorkers(2, 4) as pool:
        dying = pool.submit(die)  # the first call goes to worker 0
        deadline = time.monotonic() + WAIT
        sent = 0
        while not dying.done():  # worker 1 answers every ~50 ms meanwhile
            assert time.monotonic() < deadline, "the dead worker was never noticed"
            pool.submit(where, 0.05)
            sent += 1
            time.sleep(0.02)
        with pytest.raises(BrokenProcessPool, match="worker died"):
            dying.result()
        assert pool.capacity() == 4  # T of the live worker only
        assert pool.submit(where).result(WAIT)[1] == 1  # and it goes on


def test_when_every_worker_died_submit_raises():
    with ThreadedWorkers(1, 1) as pool:
        with pytest.raises(BrokenProcessPool):
            pool.submit(die).result(WAIT)
        assert pool.capacity() == 0
        with pytest.raises(BrokenProcessPool, match="every worker process died"):
            pool.submit(where)
