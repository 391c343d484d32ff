"""Tiny real sweeps through the runner: the trained tasks learn, and their rows carry the
theory's parameter counts, a learning curve and the width-threshold contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.results import read_rows
from experiments.runner import run_sweep
from experiments.sweep import Grid, SweepConfig, run_id
from paper_figures.explorer import load_empirical
from theory.bounds import graph_arch, param_counts


@pytest.mark.slow  # ~5 s alone, ~30 s on a loaded 2-core machine
def test_tiny_phonebook_sweep_memorizes_and_counts_parameters_like_theory(
    tmp_path: Path,
) -> None:
    sweep = SweepConfig(
        name="memorization",
        scale="tiny",
        task="phonebook",
        fixed={
            "entries": 48,
            "width": 16,
            "mlp_hidden": 32,
            "value_bits": 6,
            "top_k": 1,
            "steps": 120,
            "batch": 64,
            "lr": 2e-2,
            "eval_interval": 40,
            "threads": 1,
        },
        axes={"experts": [1, 2]},
    )
    report = run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)
    assert report.failed == 0
    rows = {r["config"]["experts"]: r for r in read_rows(report.path)}
    for k, row in rows.items():
        m = row["metrics"]
        assert m["recall"] >= 0.9, f"K={k} recalled only {m['recall']:.2f} of 48 entries"
        assert m["entries_memorized"] == round(m["recall"] * 48)
        assert m["bits_per_total_param"] == pytest.approx(m["bits_stored"] / m["total_params"])
        assert [s for s, _ in row["curve"]["evals"]] == [40, 80, 120]
    # K experts of the same size: K − 1 more experts (2·16·32 + 32 + 16 each) and a router
    expert = 2 * 16 * 32 + 32 + 16
    assert rows[2]["metrics"]["total_params"] - rows[1]["metrics"]["total_params"] == (
        expert + 2 * 16
    )
    assert rows[2]["metrics"]["active_params"] - rows[1]["metrics"]["active_params"] == 2 * 16
    assert not (tmp_path / "s" / "memorization" / "tiny" / rows[1]["run_id"]).exists()


def test_tiny_length2_and_threshold_rows(tmp_path: Path) -> None:
    common = {
        "vertices": 5,
        "heads": 2,
        "layers": 1,
        "top_k": 1,
        "experts": 1,
        "threads": 1,
        "steps": 20,
        "batch": 32,
        "lr": 3e-3,
        "eval_size": 128,
        "eval_interval": 10,
    }
    sweep = SweepConfig(
        name="mixed",
        scale="tiny",
        task="length2",
        fixed=common,
        grids=(Grid("dense", axes={"width": [8]}),),
    )
    report = run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)
    (row,) = read_rows(report.path)
    assert row["status"] == "ok"
    theory = param_counts(graph_arch(5, 8, heads=2, layers=1))
    assert row["metrics"]["total_params"] == theory["total"]
    assert row["metrics"]["active_params"] == theory["active"]
    assert 0.0 <= row["metrics"]["accuracy"] <= 1.0 and len(row["curve"]["evals"]) == 2

    thresholds = SweepConfig(
        name="threshold",
        scale="tiny",
        task="threshold",
        fixed={**common, "widths": [4, 8]},
        axes={"target": [0.01, 1.0]},
    )
    report = run_sweep(thresholds, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)
    rows = {r["config"]["target"]: r["metrics"] for r in read_rows(report.path)}
    assert rows[0.01]["width_threshold"] == 4  # any model beats 1%: the first width
    assert set(rows[0.01]["accuracy_by_width"]) == {"4"}
    assert rows[1.0]["width_threshold"] is None  # 20 steps never reach 100% on 128 graphs
    assert set(rows[1.0]["accuracy_by_width"]) == {"4", "8"}
    # the explorer's overlay contract: only the row with a number is a point
    points = load_empirical(tmp_path)
    assert [(p["vertices"], p["experts"], p["width"]) for p in points] == [(5, 1, 4.0)]


def test_graph_task_trains_connectivity_and_shortest_path_with_their_class_counts(
    tmp_path: Path,
) -> None:
    n, width = 6, 8
    sweep = SweepConfig(
        name="depthmini",
        scale="tiny",
        task="graph",
        fixed={
            "vertices": n,
            "width": width,
            "heads": 2,
            "layers": 2,
            "top_k": 1,
            "experts": 1,
            "threads": 1,
            "steps": 20,
            "batch": 32,
            "lr": 3e-3,
            "eval_size": 128,
            "eval_interval": 10,
        },
        axes={"problem": ["connectivity", "shortest_path", "flow"]},
        grids=(Grid("numpy"), Grid("device", fixed={"sampler": "device"})),
    )
    report = run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)
    all_rows = read_rows(report.path)
    on_device = [r for r in all_rows if r["config"]["grid"] == "device" and r["status"] == "ok"]
    assert len(on_device) == 2
    assert all(r["metrics"]["sampler"] == "device" for r in on_device)
    assert all(r["metrics"]["sampler_shortfalls"] == 0 for r in on_device)
    rows = {r["config"]["problem"]: r for r in all_rows if r["config"]["grid"] == "numpy"}
    assert rows["flow"]["status"] == "failed" and "flow" in rows["flow"]["error"]
    decision, distance = rows["connectivity"], rows["shortest_path"]
    assert decision["status"] == distance["status"] == "ok"
    # connectivity has the length-2 classifier's 2 classes; shortest path one class per
    # distance 0..n-1 (0 = unreachable): n - 2 more read-out rows of width + 1 parameters
    two_class = param_counts(graph_arch(n, width, heads=2, layers=2))["total"]
    assert decision["metrics"]["total_params"] == two_class
    assert distance["metrics"]["total_params"] == two_class + (n - 2) * (width + 1)
    assert all(len(r["curve"]["evals"]) == 2 for r in (decision, distance))


def test_device_sampler_option_changes_the_sampler_not_the_run_ids(tmp_path: Path) -> None:
    # the option makes ``device`` the default sampler: a run's own ``sampler`` and a
    # curriculum (drawn with numpy) keep theirs, and every run keeps its id
    sweep = SweepConfig(
        name="samplers",
        scale="tiny",
        task="length2",
        fixed={
            "vertices": 5,
            "width": 8,
            "heads": 2,
            "layers": 1,
            "top_k": 1,
            "experts": 1,
            "threads": 1,
            "steps": 4,
            "batch": 16,
            "lr": 3e-3,
            "eval_size": 32,
            "eval_interval": 4,
        },
        grids=(
            Grid("plain"),
            Grid("own", fixed={"sampler": "numpy"}),
            Grid("curriculum", fixed={"curriculum": 3}),
        ),
    )
    kw = {"results_dir": tmp_path, "scratch_dir": tmp_path / "s", "progress": False}
    report = run_sweep(sweep, options={"device_sampler": True}, **kw)
    assert report.ran == 3
    rows = {r["config"]["grid"]: r for r in read_rows(report.path)}
    assert {g: r["metrics"]["sampler"] for g, r in rows.items()} == {
        "plain": "device",
        "own": "numpy",
        "curriculum": "numpy",
    }
    assert rows["plain"]["metrics"]["sampler_shortfalls"] == 0
    assert all(r["options"] == {"device_sampler": True} for r in rows.values())
    assert {r["run_id"] for r in rows.values()} == {run_id(c) for c in sweep.runs()}
