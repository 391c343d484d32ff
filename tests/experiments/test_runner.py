"""The runner: resume after a crash (a real kill -9 included) with complete, unique rows;
failed runs recorded and the sweep going on; the lock; the submitit path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from experiments import runner
from experiments.cli import main
from experiments.results import git_sha, latest_rows, read_rows
from experiments.runner import _exclusive, lock_path, results_path, run_progress, run_sweep
from experiments.sweep import Grid, SweepConfig, run_id
from theory.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def selftest(n: int, sleep: float = 0.0, failing: tuple[int, ...] = ()) -> SweepConfig:
    """n runs of the no-training task; the runs with value in ``failing`` raise."""
    fine = [v for v in range(n) if v not in failing]
    grids = [Grid("ok", axes={"value": fine})]
    if failing:
        grids.append(Grid("bad", fixed={"fail": True}, axes={"value": list(failing)}))
    return SweepConfig(
        name="selftest", scale="tiny", task="selftest", fixed={"sleep": sleep}, grids=tuple(grids)
    )


def with_a_dying_run(sleep: float, others: int) -> SweepConfig:
    """Run 0 SIGKILLs its own worker at once (as an OOM kill would); runs 1..others sleep."""
    return SweepConfig(
        name="selftest",
        scale="tiny",
        task="selftest",
        fixed={"sleep": sleep},
        grids=(
            Grid("die", fixed={"value": 0, "die": True, "sleep": 0.0}),
            Grid("ok", axes={"value": list(range(1, others + 1))}),
        ),
    )


def check_complete(sweep: SweepConfig, path: Path) -> list[dict]:
    rows = read_rows(path)
    ids = [r["run_id"] for r in rows]
    assert len(ids) == len(set(ids)), "a run was written twice"
    assert set(ids) == {run_id(c) for c in sweep.runs()}
    for r in rows:
        assert r["run_id"] == run_id(r["config"])
        assert {"config", "metrics", "curve", "seed", "wall_s", "provenance"} <= set(r)
        assert r["provenance"]["git_sha"] is None or len(r["provenance"]["git_sha"]) >= 40
        if r["status"] == "ok":  # a worker that died left no word on its malloc
            assert r["provenance"]["malloc"] in ("kept", "system", "unsupported", "refused")
    return rows


def test_sweep_writes_one_row_per_run_and_a_rerun_does_nothing(tmp_path: Path) -> None:
    sweep = selftest(5)
    report = run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)
    assert (report.ran, report.skipped, report.failed) == (5, 0, 0)
    rows = check_complete(sweep, report.path)
    assert sorted(r["metrics"]["square"] for r in rows) == [0, 1, 4, 9, 16]
    assert SweepConfig.from_json(report.path.with_suffix(".sweep.json").read_text()) == sweep
    again = run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)
    assert (again.ran, again.skipped) == (0, 5)
    assert len(read_rows(report.path)) == 5


def test_torn_last_line_is_cut_and_its_run_redone(tmp_path: Path) -> None:
    sweep = selftest(4)
    kw: dict[str, Any] = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s", "progress": False}
    path = run_sweep(sweep, **kw).path
    lines = path.read_bytes().splitlines(keepends=True)
    # a crash during the last append: the last row is half written, no newline
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    assert len(read_rows(path)) == 3  # the reader skips the torn line
    report = run_sweep(sweep, **kw)
    assert (report.ran, report.skipped) == (1, 3)
    check_complete(sweep, path)


def test_failed_runs_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep = selftest(6, failing=(1, 4))
    kw: dict[str, Any] = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s", "progress": False}
    report = run_sweep(sweep, **kw)
    assert (report.ran, report.failed) == (6, 2)
    rows = check_complete(sweep, report.path)
    bad = [r for r in rows if r["status"] == "failed"]
    assert sorted(r["config"]["value"] for r in bad) == [1, 4]
    assert all("fails on purpose" in r["error"] and r["metrics"] == {} for r in bad)
    # a failed run is put on the device it asked for (auto: the GPU if there is one), not
    # on the host's processor name, so --status does not list it as a device of its own
    import torch

    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    assert all(r["provenance"]["device"] == card for r in bad)
    assert all(r["error"] is None for r in rows if r["status"] == "ok")
    assert run_sweep(sweep, **kw).ran == 0  # failures are results: not retried by default
    retry = run_sweep(sweep, retry_failed=True, **kw)
    assert (retry.ran, retry.failed) == (2, 2)
    assert len(read_rows(report.path)) == 8 and len(latest_rows(report.path)) == 6


def test_a_second_runner_on_the_same_sweep_is_refused(tmp_path: Path) -> None:
    sweep = selftest(2)
    with _exclusive(tmp_path / "s" / "selftest" / "tiny" / "runner.lock"):
        with pytest.raises(InputError, match="another runner"):
            run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)


def test_a_second_runner_with_its_own_scratch_is_still_refused_the_results_file(
    tmp_path: Path,
) -> None:
    """The rows are what must not be written twice: they are locked (beside the file), not only
    the scratch folder."""
    sweep = selftest(2)
    with _exclusive(lock_path(results_path(sweep, tmp_path))):
        with pytest.raises(InputError, match="another runner"):
            run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "other", progress=False)
    assert not results_path(sweep, tmp_path).exists()  # the lock is beside the rows, not on them
    with pytest.raises(InputError):
        run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path, only={"nosuch": ["1"]})
    assert not results_path(sweep, tmp_path).exists()
    report = run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "other", progress=False)
    assert report.ran == 2  # released with its holder


def test_kill_9_mid_sweep_then_restart_finishes_with_complete_unique_rows(
    tmp_path: Path,
) -> None:
    """A real runner process with 2 worker processes, SIGKILLed mid-sweep, then restarted."""
    sweep = selftest(16, sleep=0.4, failing=(5,))
    spec = tmp_path / "sweep.json"
    spec.write_text(sweep.to_json())
    path = results_path(sweep, tmp_path / "r")
    code = (
        "import sys; from pathlib import Path; from experiments.runner import run_sweep; "
        "from experiments.sweep import SweepConfig; "
        "s = SweepConfig.from_json(Path(sys.argv[1]).read_text()); "
        "run_sweep(s, workers=2, results_dir=sys.argv[2], scratch_dir=sys.argv[3], "
        "progress=False)"
    )
    args = [sys.executable, "-c", code, str(spec), str(tmp_path / "r"), str(tmp_path / "s")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 90
        while len(read_rows(path)) < 3:
            assert proc.poll() is None, "the runner ended before it could be killed"
            assert time.monotonic() < deadline, "the runner wrote no rows in 90 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = read_rows(path)
    assert 3 <= len(before) < 16, "the kill should land mid-sweep"
    # and as if the kill had also torn a row mid-write
    with open(path, "ab") as f:
        f.write(b'{"sweep": "selftest", "run_id": "torn')
    report = run_sweep(
        sweep, workers=1, results_dir=tmp_path / "r", scratch_dir=tmp_path / "s", progress=False
    )
    assert report.skipped == len(before) and report.ran == 16 - len(before)
    rows = check_complete(sweep, path)
    assert len(rows) == 16
    print(f"kill -9 after {len(before)} of 16 rows; the restart ran {report.ran}")
    assert [r["config"]["value"] for r in rows if r["status"] == "failed"] == [5]
    assert json.loads(path.read_text().splitlines()[-1])  # no torn line left behind


def _children(pid: int) -> set[int]:
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        kids.update(int(k) for k in text.split())
    return kids


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_ctrl_c_stops_the_runs_in_flight_instead_of_waiting_for_them(tmp_path: Path) -> None:
    """SIGINT to the runner (``kill -INT``, or Ctrl-C): it exits within seconds, stopping
    its workers' runs, rather than waiting out runs that could last hours; the runs stopped
    have no row, so running the sweep again does them."""
    sweep = selftest(4, sleep=60.0)
    spec = tmp_path / "sweep.json"
    spec.write_text(sweep.to_json())
    args = [sys.executable, "-m", "experiments.cli", "sweep", "x", "--config", str(spec)]
    args += ["--results", str(tmp_path / "r"), "--scratch", str(tmp_path / "s")]
    args += ["--workers", "2", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # a shell runs a background job (`cmd &`, as a CI script may) with SIGINT ignored, and
    # the child would inherit that: Ctrl-C must reach the runner as it does from a terminal
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 3:  # the resource tracker and two workers
            assert proc.poll() is None and time.monotonic() < deadline, "no workers started"
            time.sleep(0.1)
        time.sleep(3.0)  # the two runs are sleeping in their workers by now
        workers = _children(proc.pid)
        began = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=45)  # the runs would sleep 60 s
    finally:
        proc.kill()
        proc.communicate()  # reaped and its pipe closed, whatever happened above
    assert time.monotonic() - began < 30, "the runner waited for its runs"
    assert proc.returncode == 130
    assert "the runs in flight were stopped too" in err
    assert not results_path(sweep, tmp_path / "r").exists() or not read_rows(
        results_path(sweep, tmp_path / "r")
    )
    time.sleep(2.0)
    for pid in workers:  # none left behind (a zombie is dead, only not yet reaped)
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_cli_lists_runs_and_reports_bad_input_as_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "selftest", "--scale", "tiny", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and all(json.loads(x)["task"] == "selftest" for x in lines)
    assert main(["sweep", "nope"]) == 2
    assert "unknown sweep" in capsys.readouterr().err
    assert main(["sweep", "selftest", "--workers", "0", "--results", str(tmp_path)]) == 2


def test_submitit_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    with pytest.raises(InputError, match="pip install submitit"):
        run_sweep(
            selftest(2),
            executor="submitit",
            results_dir=tmp_path,
            scratch_dir=tmp_path / "s",
            progress=False,
        )


def test_ctrl_c_cancels_the_submitit_jobs_not_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted, the runner cancels its cluster jobs: left running they would go
    unrecorded, and a rerun would submit them again into the same scratch folders."""
    jobs: list[Any] = []

    class Job:
        def __init__(self, finished: bool, fn: Any, args: tuple) -> None:
            self.finished, self.cancelled, self.polls = finished, False, 0
            self.fn, self.args = fn, args

        def done(self) -> bool:
            self.polls += 1
            if self is jobs[-1] and self.polls == 1:
                raise KeyboardInterrupt  # Ctrl-C while the runner polls
            return self.finished

        def result(self) -> dict:  # the run, done here
            return self.fn(*self.args)

        def cancel(self, check: bool = True) -> None:
            self.cancelled = True

    class Executor:
        def __init__(self, folder: str, cluster: str | None) -> None:
            pass

        def update_parameters(self, **params: Any) -> None:
            pass

        def submit(self, fn: Any, *args: Any) -> Job:
            jobs.append(Job(len(jobs) == 0, fn, args))
            return jobs[-1]

    fake = type(sys)("submitit")
    fake.AutoExecutor = Executor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "submitit", fake)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(
            selftest(3),
            executor="submitit",
            results_dir=tmp_path,
            scratch_dir=tmp_path / "s",
            progress=False,
        )
    assert len(jobs) == 3
    assert [j.cancelled for j in jobs] == [False, True, True]  # the finished one is left
    [done] = read_rows(results_path(selftest(3), tmp_path))
    assert done["status"] == "ok" and done["config"]["value"] == 0


@pytest.mark.slow
def test_submitit_local_executor_runs_the_sweep(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    sweep = selftest(3, failing=(2,))
    report = run_sweep(
        sweep,
        executor="submitit",
        submitit_cluster="local",
        results_dir=tmp_path / "r",
        scratch_dir=tmp_path / "s",
        progress=False,
    )
    assert (report.ran, report.failed) == (3, 1)
    check_complete(sweep, report.path)


def test_only_runs_a_slice_and_the_rest_runs_later(tmp_path: Path) -> None:
    sweep = selftest(6)
    report = run_sweep(
        sweep,
        results_dir=tmp_path,
        scratch_dir=tmp_path / "s",
        progress=False,
        only={"value": [1, 4]},
    )
    assert (report.total, report.ran) == (2, 2)
    rows = read_rows(results_path(sweep, tmp_path))
    assert sorted(r["config"]["value"] for r in rows) == [1, 4]
    report = run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)
    assert (report.total, report.skipped, report.ran) == (6, 2, 4)
    check_complete(sweep, results_path(sweep, tmp_path))
    with pytest.raises(InputError, match="no run has"):
        run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", only={"nope": [1]})


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_after_starts_no_run_past_the_budget_and_a_rerun_finishes(
    tmp_path: Path, workers: int
) -> None:
    # runs of 0.4 s, a budget of 1 s (counted from the call, set-up included): one round of
    # runs starts (one per worker), at most three, never all eight; every started run
    # writes its row; the rerun does the rest
    sweep = selftest(8, sleep=0.4)
    kw: dict[str, Any] = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s"}
    first = run_sweep(sweep, workers=workers, progress=False, stop_after=1.0, **kw)
    assert 1 <= first.ran <= 3 * workers < 8 and first.failed == 0
    assert first.ran + first.not_started == 8
    rows = read_rows(first.path)
    assert len(rows) == first.ran
    started = sorted(r["config"]["value"] for r in rows)
    assert started == list(range(first.ran)), "runs start in sweep order"
    rest = run_sweep(sweep, workers=workers, progress=False, **kw)
    assert (rest.skipped, rest.ran, rest.not_started) == (first.ran, 8 - first.ran, 0)
    check_complete(sweep, first.path)


def test_stop_after_rejects_a_bad_budget_and_the_cluster_executor(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s"}
    with pytest.raises(InputError, match="positive number of seconds"):
        run_sweep(selftest(2), stop_after=0, **kw)
    with pytest.raises(InputError, match="local executor"):
        run_sweep(selftest(2), executor="submitit", stop_after=10, **kw)


def test_a_worker_killed_mid_sweep_fails_its_runs_and_the_sweep_still_reports(
    tmp_path: Path,
) -> None:
    # the first run SIGKILLs its worker (as an OOM kill would) while the second is in flight
    # and four wait: the pool is broken, so the four not handed out yet are recorded as
    # failed ("worker died"), never lost, and the sweep still reports
    sweep = with_a_dying_run(sleep=1.0, others=5)
    kw: dict[str, Any] = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s"}
    report = run_sweep(sweep, workers=2, progress=False, **kw)
    rows = check_complete(sweep, report.path)
    assert (report.ran, report.not_started) == (6, 0)
    assert report.failed == sum(r["status"] == "failed" for r in rows)
    # run 1, in flight, may finish before the death is noticed; the rest cannot
    failed = {r["config"]["value"] for r in rows if r["status"] == "failed"}
    assert {0, 2, 3, 4, 5} <= failed
    assert all("worker died" in r["error"] for r in rows if r["status"] == "failed")


def test_execution_options_reach_the_task_but_not_the_run_id(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s", "progress": False}
    sweep = selftest(3)
    first = run_sweep(sweep, only={"value": [0]}, **kw)  # without options
    rest = run_sweep(sweep, options={"cuda_graph": True}, **kw)
    assert (first.ran, rest.skipped, rest.ran) == (1, 1, 2), "the same runs, the same ids"
    rows = check_complete(sweep, results_path(sweep, tmp_path))
    assert [r.get("options") for r in rows] == [None, {"cuda_graph": True}, {"cuda_graph": True}]
    assert all("cuda_graph" not in r["config"] for r in rows)
    assert [r["metrics"]["cuda_graph"] for r in rows] == [False, True, True]  # reached the task
    with pytest.raises(InputError, match="unknown execution option"):
        run_sweep(sweep, options={"threads": 4}, **kw)


# -- progress of the runs in flight --------------------------------------------------------


def write_metrics(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def test_run_progress_reads_the_last_complete_line_of_the_newest_metrics(tmp_path):
    config = {"task": "threshold", "steps": 3000, "seed": 0}
    folder = tmp_path / run_id(config)
    assert run_progress(tmp_path, config) is None  # not started
    old = folder / "w8" / "metrics.jsonl"
    write_metrics(old, ['{"kind": "eval", "step": 3000, "accuracy": 0.61}'])
    assert run_progress(tmp_path, config) == "3000/3000 acc 0.610"
    new = folder / "w16" / "metrics.jsonl"
    write_metrics(new, ['{"kind": "train", "step": 250, "loss": 0.69}'])
    os.utime(old, (1, 1))  # the width trained first is the older file
    assert run_progress(tmp_path, config) == "250/3000"
    write_metrics(
        new,
        [
            '{"kind": "train", "step": 250, "loss": 0.69}',
            '{"kind": "eval", "step": 250, "accuracy": 0.7345}',
            '{"kind": "train", "step": 5',  # being written
        ],
    )
    assert run_progress(tmp_path, config) == "250/3000 acc 0.735"


class FakeBar:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.notes.append(text)


def test_the_watcher_shows_the_runs_in_flight_and_the_failures(tmp_path):
    configs = [{"task": "length2", "steps": 1000, "seed": s} for s in range(5)]
    write_metrics(
        tmp_path / run_id(configs[0]) / "metrics.jsonl",
        ['{"kind": "eval", "step": 500, "accuracy": 0.6}'],
    )
    bar = FakeBar()
    watcher = runner._Watcher(bar, tmp_path, every=0.02, shown=3)
    for config in configs:
        watcher.started(config)
    first = run_id(configs[0])[:6]
    assert watcher.note() == (
        f"{first} 500/1000 acc 0.600; {run_id(configs[1])[:6]} starting; "
        f"{run_id(configs[2])[:6]} starting; +2 more"
    )
    watcher.start()
    deadline = time.time() + 5
    while not bar.notes and time.time() < deadline:
        time.sleep(0.01)
    watcher.close()
    assert bar.notes and bar.notes[0].startswith(first)
    assert not watcher.thread.is_alive()
    for config in configs[1:]:
        watcher.finished(run_id(config), failed=2)
    assert bar.notes[-1] == f"failed 2; {first} 500/1000 acc 0.600"


def test_a_sweep_with_progress_shows_its_run_in_flight(tmp_path, capsys):
    sweep = selftest(2, sleep=0.5)
    run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress_every=0.05)
    err = capsys.readouterr().err
    assert f"{run_id(sweep.runs()[0])[:6]} starting" in err
    check_complete(sweep, results_path(sweep, tmp_path))


def test_git_sha_calls_code_dirty_but_not_results_figures_or_prose(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    files = {
        "models/code.py": "x = 1\n",
        "experiments/results/s/small.jsonl": "{}\n",
        "paper_figures/output/f.png": "png",
        "README.md": "# r\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    sha = git_sha(tmp_path)
    assert sha is not None and len(sha) == 40
    for name in ("experiments/results/s/small.jsonl", "paper_figures/output/f.png", "README.md"):
        (tmp_path / name).write_text("changed\n")
    (tmp_path / "new_untracked.py").write_text("y = 2\n")
    assert git_sha(tmp_path) == sha  # a sweep's own rows do not make the code dirty
    (tmp_path / "models/code.py").write_text("x = 2\n")
    assert git_sha(tmp_path) == sha + "-dirty"
    assert git_sha(tmp_path / "models") == sha + "-dirty"  # from a subfolder, the whole tree


# -- several runs per worker, on threads ---------------------------------------------------


def test_runs_per_worker_trains_runs_at_once_on_threads_of_one_worker(tmp_path: Path) -> None:
    sweep = selftest(6, sleep=0.5)
    kw: dict[str, Any] = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s"}
    report = run_sweep(sweep, workers=1, runs_per_worker=3, progress=False, **kw)
    assert (report.ran, report.failed) == (6, 0)
    rows = check_complete(sweep, report.path)
    assert sorted(r["metrics"]["square"] for r in rows) == [0, 1, 4, 9, 16, 25]
    pids = {r["metrics"]["pid"] for r in rows}
    assert len(pids) == 1 and os.getpid() not in pids  # one spawned worker
    spans = sorted((r["metrics"]["began"], r["metrics"]["ended"]) for r in rows)
    # the first three ran at once (each sleeps 0.5 s, all began before any ended)
    assert max(b for b, _ in spans[:3]) < min(e for _, e in spans[:3])
    with pytest.raises(InputError, match="runs_per_worker must be a positive integer"):
        run_sweep(sweep, runs_per_worker=0, progress=False, **kw)


def test_a_threaded_worker_that_dies_fails_its_runs_and_the_other_worker_goes_on(
    tmp_path: Path,
) -> None:
    sweep = with_a_dying_run(sleep=0.3, others=7)
    kw: dict[str, Any] = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s"}
    reports: list[Any] = []
    # on a thread with a bound, so that a death never noticed fails the test, not hangs it
    sweeping = threading.Thread(
        target=lambda: reports.append(
            run_sweep(sweep, workers=2, runs_per_worker=2, progress=False, **kw)
        ),
        daemon=True,
    )
    sweeping.start()
    sweeping.join(120)
    assert not sweeping.is_alive(), "the sweep hung after a worker died"
    [report] = reports
    rows = check_complete(sweep, report.path)
    assert (report.ran, report.not_started) == (8, 0)
    failed = {r["config"]["value"] for r in rows if r["status"] == "failed"}
    assert 0 in failed and len(failed) <= 2  # the dying run, and at most its thread-mate
    assert all("worker died" in r["error"] for r in rows if r["status"] == "failed")
    assert report.failed == len(failed)


def test_cli_runs_per_worker_reaches_the_runner(tmp_path: Path, capsys) -> None:
    args = ["sweep", "selftest", "--scale", "tiny", "--results", str(tmp_path)]
    args += ["--scratch", str(tmp_path / "s"), "--no-progress", "--runs-per-worker", "2"]
    assert main([*args, "--only", "value=0,1"]) == 0
    rows = read_rows(tmp_path / "selftest" / "tiny.jsonl")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert {r["metrics"]["pid"] for r in rows} != {os.getpid()}


@pytest.mark.slow
def test_training_runs_on_threads_compute_what_they_compute_alone(tmp_path: Path) -> None:
    """Threads share a process, not a result: the same length-2 runs, 2 per worker, give the
    rows (accuracies, curves) the same runs give one after another."""
    fixed = {"vertices": 5, "width": 8, "layers": 1, "heads": 2, "experts": 1, "top_k": 1}
    fixed |= {"steps": 30, "batch": 16, "lr": 3e-3, "eval_size": 64, "eval_interval": 10}
    fixed |= {"threads": 1, "device": "cpu"}
    sweep = SweepConfig(name="l2", scale="tiny", task="length2", fixed=fixed, seeds=(0, 1, 2))
    alone = run_sweep(sweep, results_dir=tmp_path / "a", scratch_dir=tmp_path / "s", progress=False)
    threads = run_sweep(
        sweep,
        workers=1,
        runs_per_worker=3,
        results_dir=tmp_path / "t",
        scratch_dir=tmp_path / "s",
        progress=False,
    )
    keys = ("accuracy", "loss", "best_accuracy", "steps", "total_params")

    def summary(path: Path) -> dict[str, Any]:
        rows = check_complete(sweep, path)
        assert all(r["status"] == "ok" for r in rows)
        return {r["run_id"]: ([r["metrics"][k] for k in keys], r["curve"]) for r in rows}

    assert summary(threads.path) == summary(alone.path)
