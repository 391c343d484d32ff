"""Where a sweep stands: counts per grid, and device time as the union of the runs' intervals."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.cli import main
from experiments.progress import DeviceUse, device_use, render_devices, sweep_status, union_length
from experiments.results import append_row
from experiments.runner import results_path, run_sweep
from experiments.sweep import Grid, SweepConfig, run_id
from theory.errors import InputError

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone(timedelta(hours=1)))


def row(start_s: float, wall_s: float | None, device: str = "gpu", **extra) -> dict:
    """A row whose run started ``start_s`` seconds after T0 and took ``wall_s``."""
    end = T0 + timedelta(seconds=start_s + (wall_s or 0))
    return {
        "status": "ok",
        "wall_s": wall_s,
        "provenance": {"device": device, "time": end.strftime("%Y-%m-%dT%H:%M:%S%z")},
        **extra,
    }


intervals = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 15)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=12,
)


@given(intervals)
def test_union_length_counts_every_covered_unit_once(spans):
    # integer endpoints: the union's length is the number of unit cells [k, k+1] covered
    covered = {k for a, b in spans for k in range(a, b)}
    assert union_length(spans) == len(covered)
    assert union_length(spans) <= sum(b - a for a, b in spans)


def test_union_length_rejects_a_backward_interval():
    with pytest.raises(InputError, match="ends before it starts"):
        union_length([(0, 1), (5, 2)])


def test_device_time_is_the_union_of_overlapping_runs_and_skips_gaps():
    rows = [
        row(0, 100),  # two runs at once for 100 s ...
        row(0, 100),
        row(50, 100),  # ... a third from 50 s to 150 s
        row(3600, 60),  # an hour later, another sitting: the gap is not counted
        row(0, 30, device="cpu"),
        row(200, 10, status="failed"),  # busy time, but no finished run
        row(10, None),  # a worker that died: no interval
        {"wall_s": 5.0, "provenance": {"device": "gpu"}},  # no end stamp
    ]
    uses = {u.device: u for u in device_use(rows)}
    gpu = uses["gpu"]
    assert (gpu.runs, gpu.busy_s, gpu.run_s) == (4, 220.0, 370.0)
    assert gpu.runs_per_hour == pytest.approx(4 / 220 * 3600)
    assert gpu.concurrency == pytest.approx(370 / 220)
    assert (uses["cpu"].runs, uses["cpu"].busy_s) == (1, 30.0)
    assert [u.device for u in device_use(rows)] == ["gpu", "cpu"]  # busiest first


def test_stamps_in_other_time_zones_are_one_clock():
    utc = row(0, 10)
    shifted = dict(utc)
    end = datetime.strptime(utc["provenance"]["time"], "%Y-%m-%dT%H:%M:%S%z")
    later = end.astimezone(timezone(timedelta(hours=-5))) + timedelta(seconds=5)
    shifted["provenance"] = {"device": "gpu", "time": later.strftime("%Y-%m-%dT%H:%M:%S%z")}
    assert device_use([utc, shifted])[0].busy_s == 15.0  # [0, 10] and [5, 15]


def _sweep() -> SweepConfig:
    return SweepConfig(
        name="selftest",
        scale="tiny",
        task="selftest",
        fixed={"sleep": 0.0},
        grids=(
            Grid("a", axes={"value": [0, 1, 2]}),
            Grid("b", fixed={"fail": True}, axes={"value": [3, 4]}),
        ),
    )


def test_status_counts_ok_failed_and_missing_per_grid(tmp_path):
    sweep = _sweep()
    run_sweep(
        sweep,
        results_dir=tmp_path,
        scratch_dir=tmp_path / "s",
        progress=False,
        only={"value": [0, 1, 3]},
    )
    path = results_path(sweep, tmp_path)
    append_row(path, {"run_id": "not-in-the-sweep", "status": "ok", **row(0, 1)})
    status = sweep_status(sweep, tmp_path)
    counts = {g.grid: (g.planned, g.ok, g.failed, g.missing) for g in status.grids}
    assert counts == {"a": (3, 2, 0, 1), "b": (2, 0, 1, 1)}
    assert (status.planned, status.ok, status.failed, status.missing) == (5, 2, 1, 2)
    assert status.stray == 1
    # 2 finished runs (the failed one's time is busy time, not a run); the stray row is not
    # this sweep's
    assert sum(u.runs for u in status.devices) == 2
    [(rid, grid, error)] = status.failures()
    assert rid == run_id(sweep.runs()[3]) and grid == "b" and "fail" in error.lower()
    assert f"failed {rid[:8]} (b): {error}" in status.render()
    assert status.to_dict()["failures"] == [{"run_id": rid, "grid": "b", "error": error}]
    sliced = sweep_status(sweep, tmp_path, only={"value": [0, 4]})
    assert [(g.grid, g.ok, g.missing) for g in sliced.grids] == [("a", 1, 0), ("b", 0, 1)]
    # the rows of runs outside the slice are the sweep's: only the foreign row is stray
    assert sliced.stray == 1


def test_a_retried_run_counts_once_with_its_last_row(tmp_path):
    sweep = _sweep()
    path = results_path(sweep, tmp_path)
    rid = run_id(sweep.runs()[0])
    append_row(path, {"run_id": rid, "status": "failed", **row(0, 5)})
    append_row(path, {"run_id": rid, "status": "ok", **row(10, 5)})
    status = sweep_status(sweep, tmp_path)
    assert (status.ok, status.failed) == (1, 0)
    assert status.devices[0].runs == 1


def test_cli_status_prints_a_table_and_json(tmp_path, capsys):
    common = ["sweep", "selftest", "--scale", "tiny", "--results", str(tmp_path)]
    assert (
        main([*common, "--scratch", str(tmp_path / "s"), "--no-progress", "--only", "value=0,1"])
        == 0
    )
    capsys.readouterr()
    assert main([*common, "--status"]) == 0
    text = capsys.readouterr().out
    assert "selftest/tiny: 2 ok, 0 failed, 4 missing of 6 planned" in text
    assert main([*common, "--status", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sweeps"][0]["ok"] == 2 and out["sweeps"][0]["missing"] == 4
    assert out["sweeps"][0]["devices"][0]["runs"] == 2


def test_cli_status_all_sweeps_and_its_errors(tmp_path, capsys):
    assert main(["sweep", "all", "--scale", "tiny", "--status", "--results", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    for name in ("reasoning", "depth", "learnability", "memorization", "threshold"):
        assert f"{name}/tiny: 0 ok" in text
    assert "selftest" not in text
    assert main(["sweep", "all", "--status", "--only", "layers=1"]) == 2
    assert "give its NAME" in capsys.readouterr().err
    assert main(["sweep", "selftest", "--json"]) == 2
    assert "--json goes with --status" in capsys.readouterr().err


def test_device_lines_extrapolate_the_missing_runs_at_the_measured_rate():
    use = DeviceUse("gpu", runs=4, busy_s=3600.0, run_s=7200.0)
    assert render_devices([use], missing=8) == [
        "gpu: 4 runs in 60.0 busy minutes, 4 runs/hour, 2.0 runs in flight",
        "  at that rate the 8 missing runs: ~120 min",
    ]
    assert len(render_devices([use])) == 1  # nothing missing, nothing extrapolated


def test_runs_resumed_from_a_checkpoint_are_counted_and_flagged():
    """A resumed run's wall time is its last sitting only, so the device line says how many
    of its runs were resumed and that the rate overstates; fresh and failed runs are not."""
    rows = [
        row(0, 10, metrics={"resumed_from": 0}),
        row(20, 10, metrics={"resumed_from": 2500}),
        row(40, 10),  # an older row without the key
        row(60, 10, status="failed", metrics={"resumed_from": 250}),
    ]
    (use,) = device_use(rows)
    assert (use.runs, use.resumed) == (3, 1)
    lines = render_devices([use], missing=2)
    assert lines[1] == "  1 of them resumed: earlier sittings not counted, so the rate is high"
    assert lines[2].startswith("  at that rate the 2 missing runs")
    assert use.to_dict()["resumed"] == 1
    assert len(render_devices([DeviceUse("gpu", 1, 10.0, 10.0)])) == 1  # none resumed: no line


def test_cli_sweep_with_threads_says_they_have_not_worked_on_a_gpu(tmp_path, capsys):
    common = ["sweep", "selftest", "--scale", "tiny", "--results", str(tmp_path)]
    args = [*common, "--scratch", str(tmp_path / "s"), "--no-progress", "--only", "value=0,1"]
    assert main([*args, "--runs-per-worker", "2"]) == 0
    captured = capsys.readouterr()
    assert "has not been seen to work on a GPU" in captured.err
    report = json.loads(captured.out.splitlines()[-1])
    assert (report["ran"], report["failed"]) == (2, 0)
