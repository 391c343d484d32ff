"""paper_figures.sweep_rows: which file a figure reads and how it labels a partial sweep."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["reasoning", "memorization", "threshold", "learnability"])
@pytest.mark.parametrize("scale", ["tiny", "paper"])
def test_planned_runs_counts_the_saved_sweep_like_the_sweep_itself(tmp_path, name, scale):
    from experiments.sweep import get_sweep
    from paper_figures.sweep_rows import planned_runs, source_label

    sweep = get_sweep(name, scale)
    path = tmp_path / name / f"{scale}.jsonl"
    path.parent.mkdir()
    assert planned_runs(path) is None
    path.with_suffix(".sweep.json").write_text(sweep.to_json())
    assert planned_runs(path) == len(sweep.runs())
    assert source_label(path, [{}]) == f"{name}/{scale}.jsonl, 1 of {len(sweep.runs())} runs"
    rows = [{}] * len(sweep.runs())
    assert source_label(path, rows) == f"{name}/{scale}.jsonl"
