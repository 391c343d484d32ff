"""The capture gate: no run works on the device while another run of the process captures."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from models import train as train_module
from models.capture_gate import GATE, CaptureGate
from models.train import TrainConfig, train
from tests.models.test_train import FAST, contains_mark, held_out, tiny_model

WAIT = 5.0  # seconds: generous, so a slow machine cannot fail a test that is right


def started(fn, *args) -> threading.Thread:
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def test_a_capture_waits_for_holders_to_pause_and_holds_back_new_ones():
    gate = CaptureGate()
    log: list[str] = []
    paused = threading.Event()
    go_on = threading.Event()

    def worker() -> None:
        with gate.hold():
            log.append("work")
            go_on.wait(WAIT)
            paused.set()
            gate.pause()  # the capture goes first
            log.append("after pause")

    def capturer() -> None:
        with gate.capture():
            log.append("capture")
            time.sleep(0.05)
            log.append("capture done")

    w = started(worker)
    while gate.state()[0] != 1:
        time.sleep(0.001)
    c = started(capturer)
    while gate.state()[1] != 1:  # the capture is waiting
        time.sleep(0.001)

    def late_holder() -> None:
        with gate.hold():
            log.append("late holder")

    late = started(late_holder)
    time.sleep(0.05)
    assert log == ["work"]  # the capture waits for the holder, the new holder for the capture
    go_on.set()
    for t in (w, c, late):
        t.join(WAIT)
    assert log[:3] == ["work", "capture", "capture done"]
    assert set(log[3:]) == {"after pause", "late holder"}


def test_pause_without_a_waiting_capture_does_not_wait_and_holds_nest():
    gate = CaptureGate()
    with gate.hold(), gate.hold():
        gate.pause()
        assert gate.state() == (1, 0, False)  # one holder, counted once
    assert gate.state() == (0, 0, False)
    gate.pause()  # not holding: nothing to do


def test_a_holder_captures_alone_without_deadlocking_on_its_own_hold():
    gate = CaptureGate()
    with gate.hold():
        with gate.capture():
            assert gate.state() == (0, 0, True)
        assert gate.state() == (1, 0, False)


def test_two_captures_take_turns():
    gate = CaptureGate()
    inside = []
    overlap = []

    def run() -> None:
        with gate.hold():
            for _ in range(3):
                gate.pause()
            with gate.capture():
                overlap.append(len(inside))
                inside.append(1)
                time.sleep(0.02)
                inside.pop()
            for _ in range(3):
                gate.pause()

    threads = [started(run) for _ in range(4)]
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)
    assert overlap == [0, 0, 0, 0] and gate.state() == (0, 0, False)


@pytest.fixture
def slow_stub_capture(monkeypatch):
    """Graph capture stubbed on the CPU (as in test_train), slowed down, recording every draw
    that another thread made while it ran. Yields (sample, draws during a capture,
    hold_first): set hold_first[0] and the first capture waits for a draw inside it."""
    capturing = [0]  # captures in progress (a count: without the gate they may overlap)
    lock = threading.Lock()
    during: list[int] = []
    drawn = threading.Event()  # set by a draw inside a capture
    hold_first = [False]  # the first capture waits for such a draw (the ungated control)

    def capture(module, sample_args):
        with lock:
            capturing[0] += 1
            first, hold_first[0] = hold_first[0], False
        if first:
            # Four threads start together and their captures may all overlap, with every draw
            # after them; waiting for a draw makes the control independent of the scheduler.
            drawn.wait(WAIT)
        time.sleep(0.05)
        with lock:
            capturing[0] -= 1
        module.forward = lambda *args: type(module).forward(module, *args)
        return module

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", capture)
    monkeypatch.setattr("models.train.graph_blocker", lambda cfg, device: None)

    def sample(rng: np.random.Generator, batch: int):
        if capturing[0]:  # a thread never draws during its own capture: another's
            during.append(threading.get_ident())
            drawn.set()
        return contains_mark(rng, batch)

    return sample, during, hold_first


def graph_config(seed: int) -> TrainConfig:
    tc = TrainConfig(**{**FAST, "steps": 30, "eval_interval": 10, "seed": seed})
    object.__setattr__(tc, "cuda_graph", True)  # past the CPU check
    return tc


def train_on_threads(sample, seeds) -> list[torch.nn.Module]:
    models = [tiny_model(seed=s) for s in seeds]

    def one(i: int) -> None:
        train(models[i], graph_config(seeds[i]), sample, held_out(64), progress=False)

    threads = [started(one, i) for i in range(len(seeds))]
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return models


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_runs_on_threads_never_draw_while_another_captures(slow_stub_capture):
    sample, during, _ = slow_stub_capture
    models = train_on_threads(sample, [0, 1, 2, 3])
    assert during == []  # no draw (nor any step) ran inside another run's capture
    # and the threads changed no result: each run equals the same run alone
    for seed, model in zip([0, 1, 2, 3], models, strict=True):
        alone = tiny_model(seed=seed)
        train(alone, graph_config(seed), sample, held_out(64), progress=False)
        for (name, a), b in zip(
            alone.state_dict().items(), model.state_dict().values(), strict=True
        ):
            torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_without_the_gate_a_thread_draws_during_a_capture(slow_stub_capture, monkeypatch):
    """The test above can fail: with the gate's capture made a no-op, draws overlap it."""
    from contextlib import nullcontext

    sample, during, hold_first = slow_stub_capture
    monkeypatch.setattr(GATE, "capture", nullcontext)
    hold_first[0] = True
    train_on_threads(sample, [0, 1, 2, 3])
    assert during


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_the_stream_warning_is_off_while_any_graphed_run_lives_and_restored_after(
    slow_stub_capture,
):
    warns = getattr(torch._C, "_warn_on_accumulate_grad_stream_mismatch", None)
    if warns is None:
        pytest.skip("this torch has no AccumulateGrad stream-mismatch warning (before 2.10)")
    sample, _, _ = slow_stub_capture
    seen: list[tuple[int, bool]] = []
    captured: set[int] = set()

    def watching(rng, batch):
        me = threading.get_ident()
        if me in captured:  # this run's graph exists: the warning must be off
            seen.append((me, warns()))
        captured.add(me)  # (the first draw comes before the run's capture)
        return sample(rng, batch)

    assert warns()
    train_on_threads(watching, [0, 1, 2])
    assert seen and not any(on for _, on in seen)
    assert warns() and train_module._STREAM_WARNING_OFF._count == 0


def test_a_capture_that_raises_leaves_the_gate_as_it_found_it():
    gate = CaptureGate()
    with gate.hold():
        with pytest.raises(RuntimeError, match="capture failed"), gate.capture():
            raise RuntimeError("capture failed")
        assert gate.state() == (1, 0, False)
        gate.pause()
    assert gate.state() == (0, 0, False)


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_a_long_run_lets_a_capture_go_at_its_next_step(monkeypatch):
    """``train`` pauses at every step: a graphed run that starts while an eager run is
    training captures long before that run ends (without the pauses it would wait for it)."""
    events: dict[str, float] = {}

    def capture(module, sample_args):
        events["captured"] = time.monotonic()
        module.forward = lambda *args: type(module).forward(module, *args)
        return module

    monkeypatch.setattr(torch.cuda, "make_graphed_callables", capture)
    monkeypatch.setattr("models.train.graph_blocker", lambda cfg, device: None)
    begun = threading.Event()

    def long_sample(rng, batch):
        begun.set()
        time.sleep(0.01)  # 200 steps: at least 2 s
        return contains_mark(rng, batch)

    def long_run() -> None:
        cfg = TrainConfig(**{**FAST, "steps": 200, "eval_interval": 200})
        train(tiny_model(), cfg, long_sample, held_out(64), progress=False)
        events["long run ended"] = time.monotonic()

    t = started(long_run)
    assert begun.wait(WAIT)
    train(tiny_model(seed=1), graph_config(1), contains_mark, held_out(64), progress=False)
    t.join(60)
    assert events["captured"] < events["long run ended"] - 1.0
