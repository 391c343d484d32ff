"""`parrots generate` and `parrots solve`, through the real entry point."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from experiments.cli import main
from theory.problems import PROBLEMS


@pytest.mark.parametrize("problem", PROBLEMS)
def test_generate_then_solve_agrees(tmp_path, capsys, problem):
    out = tmp_path / "x.jsonl"
    assert main(["generate", problem, "--vertices", "9", "--count", "30", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 30
    capsys.readouterr()
    assert main(["solve", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["with_answers"] == report["agree"] == 30


def test_solve_reports_a_wrong_stored_answer(tmp_path, capsys):
    out = tmp_path / "x.jsonl"
    main(["generate", "length2", "--vertices", "8", "--count", "5", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rows[3]["answer"] = not rows[3]["answer"]
    out.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    capsys.readouterr()
    assert main(["solve", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["agree"] == 4 and report["disagreeing_lines"] == [4]


def test_solve_rejects_a_path_that_is_not_shortest(tmp_path, capsys):
    line = {
        "problem": "shortest_path",
        "n": 4,
        "edges": [[0, 1], [1, 2], [0, 2]],
        "s": 0,
        "t": 2,
        "answer": {"distance": 1, "path": [0, 1, 2]},
    }
    f = tmp_path / "sp.jsonl"
    f.write_text(json.dumps(line) + "\n")
    assert main(["solve", str(f)]) == 1


GOOD = {"problem": "length2", "n": 4, "edges": [[0, 2], [2, 1]], "s": 0, "t": 1}
BAD_LINES = [
    ("{not json", "malformed JSON"),
    (json.dumps(GOOD | {"edges": [[0, 7]]}), "outside"),
    (json.dumps(GOOD | {"edges": [[2, 2]]}), "self-loop"),
    (json.dumps(GOOD | {"t": 0}), "s != t"),
    (json.dumps(GOOD | {"problem": "triangles"}), "unknown problem"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "s"}), "missing field 's'"),
    (json.dumps(GOOD | {"n": "4"}), "field 'n'"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_bad_lines_give_one_error_line_naming_the_line(tmp_path, capsys, line, message):
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    assert main(["solve", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{f}:2:" in err and message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "-3"], "non-negative"),
        (["--vertices", "2"], "at least 3"),
        (["--family", "grid"], "unknown family"),
        (["--seed", "-1"], "non-negative"),
    ],
)
def test_bad_generate_requests_leave_no_file(tmp_path, capsys, args, message):
    out = tmp_path / "out.jsonl"
    base = ["generate", "length2", "--vertices", "8", "--count", "10", "--out", str(out)]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_missing_file_is_an_input_error(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_unknown_problem_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert (
        main(["generate", "triangles", "--vertices", "8", "--count", "1", "--out", str(out)]) == 2
    )
    assert "unknown problem 'triangles'" in capsys.readouterr().err
    assert not out.exists()


def test_solver_benchmark_agrees_with_networkx(capsys):
    assert main(["bench", "solvers", "--vertices", "12", "--instances", "300", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for problem in PROBLEMS:
        assert report[problem]["agree"] == 1.0
        assert report[problem]["speedup_vs_networkx"] > 0


def test_generation_benchmark_reports_time_and_memory(capsys):
    assert main(["bench", "generate", "--count", "2000", "--vertices", "16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 2000 and report["positive_fraction"] == 0.5
    assert report["peak_rss_mb"] >= report["baseline_rss_mb"] > 0


def test_sampler_benchmark_times_both_samplers_and_reports_the_ratio(capsys):
    args = ["bench", "sampler", "--vertices", "6", "--batch", "64", "--repeats", "2"]
    assert main([*args, "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["problem"] for r in report["rows"]] == list(PROBLEMS)
    for r in report["rows"]:
        assert r["numpy_ms"] > 0 and r["device_ms"] > 0 and r["shortfalls"] == 0
        assert r["numpy_over_device"] == pytest.approx(r["numpy_ms"] / r["device_ms"], rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "per"), [(2, 1), (1, 2)])
def test_concurrency_benchmark_runs_both_passes_and_reports_the_speedup(capsys, workers, per):
    args = ["bench", "concurrency", "--runs", "2", "--workers", str(workers), "--steps", "2"]
    args += ["--vertices", "5", "--width", "8", "--batch", "8", "--device", "cpu"]
    assert main([*args, "--runs-per-worker", str(per), "--sampler", "device", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["sampler"] == "device" and report["config"]["cuda_graph"] is False
    seq, con = report["sequential"], report["concurrent"]
    assert (seq["workers"], con["workers"]) == (1, workers)
    assert (seq["runs_per_worker"], con["runs_per_worker"]) == (1, per)
    assert report["also"] == []
    for p in (seq, con):  # a run's own time is part of its pass's
        assert 0 < p["mean_run_s"] < p["seconds"]
    # seconds and speed-up are each rounded to 2 decimals
    assert report["speedup"] == pytest.approx(seq["seconds"] / con["seconds"], rel=0.05, abs=0.01)


@pytest.mark.slow
def test_concurrency_benchmark_times_more_layouts_against_one_sequential_pass(capsys):
    args = ["bench", "concurrency", "--runs", "2", "--workers", "2", "--steps", "2"]
    args += ["--vertices", "5", "--width", "8", "--batch", "8", "--device", "cpu", "--json"]
    assert main([*args, "--also", "1x2,2X2"]) == 0
    report = json.loads(capsys.readouterr().out)
    also = report["also"]
    assert [(p["workers"], p["runs_per_worker"]) for p in also] == [(1, 2), (2, 2)]
    for p in also:
        assert p["speedup"] == pytest.approx(
            report["sequential"]["seconds"] / p["seconds"], rel=0.05, abs=0.01
        )
    assert main([*args, "--also", "1x0"]) == 2
    assert main([*args, "--also", "eight"]) == 2


def test_concurrency_benchmark_says_why_its_runs_failed():
    # the rows live in a temporary folder that is gone by the time the bench reports
    args = ["bench", "concurrency", "--runs", "1", "--workers", "1", "--steps", "1"]
    args += ["--vertices", "5", "--width", "8", "--batch", "8", "--device", "cpu"]
    with pytest.raises(RuntimeError, match=r"1 of 1 runs failed.*cuda_graph needs a CUDA device"):
        main([*args, "--cuda-graph"])


def test_sweep_cli_passes_execution_options_to_every_row(tmp_path, capsys):
    args = ["sweep", "selftest", "--scale", "tiny", "--no-progress", "--only", "value=0,1"]
    args += ["--results", str(tmp_path), "--scratch", str(tmp_path / "s")]
    flags = ["--cuda-graph", "--device-sampler", "--compile", "--guard-interval", "8"]
    assert main([*args, *flags]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = [json.loads(line) for line in Path(report["results"]).read_text().splitlines()]
    assert len(rows) == 2
    every = {"cuda_graph": True, "device_sampler": True, "compile": True, "guard_interval": 8}
    assert all(r["options"] == every for r in rows)


def _sleepers(n: int, sleep: float):
    from experiments.sweep import Grid, SweepConfig

    grid = Grid("ok", axes={"value": list(range(n))})
    return SweepConfig(
        name="selftest", scale="tiny", task="selftest", fixed={"sleep": sleep}, grids=(grid,)
    )


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``group``."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().split(")")[-1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:  # state, ppid, pgrp
            pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize("per", [1, 2])
def test_a_pass_that_outlives_its_timeout_prints_its_stacks_and_is_killed(capfd, monkeypatch, per):
    # the --pass-timeout path: a stuck pass (here, runs that sleep for a minute) must not
    # stall the bench; its processes' stacks come out on stderr, and none of them survives
    from experiments.benchmarks import concurrency

    groups: list[int] = []
    kill = concurrency._kill_group

    def spy(child, stacks):
        groups.append(child.pid)  # the child leads the pass's process group
        assert _group_members(child.pid)  # the pass is alive when it is killed
        kill(child, stacks)

    monkeypatch.setattr(concurrency, "_kill_group", spy)
    start = time.perf_counter()
    assert concurrency._timed_pass_within(_sleepers(2, 60.0), 2, per, timeout=8.0) is None
    assert time.perf_counter() - start < 30  # timeout, 2 s for the stacks, the kill
    err = capfd.readouterr().err
    assert "Thread 0x" in err or "Current thread 0x" in err  # faulthandler's dump
    time.sleep(1.0)
    assert len(groups) == 1 and _group_members(groups[0]) == []  # nothing of it survives


def test_a_pass_within_its_timeout_returns_its_time_and_rows():
    from experiments.benchmarks.concurrency import _timed_pass_within

    timed = _timed_pass_within(_sleepers(2, 0.0), 2, 1, timeout=120.0)
    assert timed is not None
    seconds, rows = timed
    assert seconds > 0 and sorted(r["config"]["value"] for r in rows) == [0, 1]
    assert all(r["status"] == "ok" for r in rows)


def test_a_guard_interval_below_one_is_refused_before_any_run(tmp_path):
    sweep = ["sweep", "selftest", "--scale", "tiny", "--no-progress", "--results", str(tmp_path)]
    assert main([*sweep, "--scratch", str(tmp_path / "s"), "--guard-interval", "0"]) == 2
    assert not list(tmp_path.rglob("*.jsonl"))  # no run started, no failed rows written
    bench = ["bench", "concurrency", "--runs", "1", "--workers", "1", "--steps", "1"]
    assert main([*bench, "--device", "cpu", "--guard-interval", "0"]) == 2
