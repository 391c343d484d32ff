"""The LADS figure and ablation table are regenerated from result rows alone."""

from __future__ import annotations

import json

import pytest

from paper_figures import fig_lads


def _row(rho: float, seed: int, unseen_lads: float) -> dict:
    def metrics(unseen: float) -> dict:
        return {
            "train_domain": 0.9, "unseen": unseen, "extended": (0.9 + 2 * unseen) / 3,
            "worst_domain": unseen, "worst_group": unseen, "mean_group": unseen,
        }  # fmt: skip

    methods = {name: metrics(0.5) for name in fig_lads.LINES}
    methods["lads_alpha0.5"] = metrics(unseen_lads)
    diag = {"domain_shift": 1.0, "nn_domain": 1.0, "nn_class": 1.0}
    return {
        "status": "ok",
        "config": {"space": {"rho_deg": rho, "seed": seed}},
        "metrics": {"methods": methods, "diagnostics": {"lads_alpha0.5": diag}},
    }


def test_figure_and_table_from_rows(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    rows = [
        _row(rho, seed, 0.8 - rho / 300 + 0.01 * seed) for rho in (0.0, 90.0) for seed in (0, 1)
    ]
    text = "\n".join(json.dumps(r) for r in rows) + "\n" + '{"torn'  # a torn last line is skipped
    (results / "rho_sweep.jsonl").write_text(text)
    monkeypatch.setattr(fig_lads, "RESULTS", results)
    paths = fig_lads.make(tmp_path / "out")
    assert [p.name for p in paths] == ["fig_lads.png", "lads_ablation.md"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = paths[1].read_text()
    assert "## ρ = 0° (2 seeds)" in table and "## ρ = 90° (2 seeds)" in table
    # mean and sample std of 0.80, 0.81 at ρ = 0
    assert "| lads_alpha0.5 | 0.900 ± 0.000 | 0.805 ± 0.007 |" in table
    assert "not CLIP" in table


def test_bias_table_puts_each_metric_and_rho_under_its_own_header(tmp_path, monkeypatch):
    """Columns are every ρ of worst-group, then every ρ of mean-group: distinct values per
    (metric, ρ) catch a cell under the wrong header."""
    results = tmp_path / "results"
    results.mkdir()
    rows = [_row(rho, seed, 0.8) for rho in (0.0, 90.0) for seed in (0, 1)]
    (results / "rho_sweep.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bias = []
    for rho in (0.0, 90.0):
        for seed in (0, 1):
            row = _row(rho, seed, 0.8)
            lp = row["metrics"]["methods"]["lp"]
            lp["worst_group"], lp["mean_group"] = 0.1 + rho / 1000, 0.6 + rho / 1000
            bias.append(row)
    (results / "bias_sweep.jsonl").write_text("\n".join(json.dumps(r) for r in bias) + "\n")
    monkeypatch.setattr(fig_lads, "RESULTS", results)
    table = fig_lads.make(tmp_path / "out")[1].read_text()
    header = (
        "| method | worst group ρ=0° | worst group ρ=90° | mean group ρ=0° | mean group ρ=90° |"
    )
    assert header in table
    line = "| lp | 0.100 ± 0.000 | 0.190 ± 0.000 | 0.600 ± 0.000 | 0.690 ± 0.000 |"
    assert line in table


def test_figure_makes_nothing_without_results(tmp_path, monkeypatch):
    monkeypatch.setattr(fig_lads, "RESULTS", tmp_path)
    assert fig_lads.make(tmp_path / "out") == []


def test_committed_results_regenerate_the_figure(tmp_path):
    if not (fig_lads.RESULTS / "rho_sweep.jsonl").exists():
        pytest.fail("experiments/results/lads/rho_sweep.jsonl is not committed")
    paths = fig_lads.make(tmp_path)
    assert paths and all(p.stat().st_size > 0 for p in paths)
    committed = fig_lads.RESULTS.parents[2] / "paper_figures" / "output" / "lads_ablation.md"
    table = next(p for p in paths if p.name == "lads_ablation.md")
    assert table.read_text() == committed.read_text()  # the committed table is current
