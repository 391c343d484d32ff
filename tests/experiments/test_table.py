"""A sweep's finished runs as a table: a line per configuration, its seeds summarised."""

from __future__ import annotations

import json
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.cli import main
from experiments.table import results_table, summary
from theory.errors import InputError


def row(seed: int, acc: float | None, status: str = "ok", **config) -> dict:
    return {
        "status": status,
        "config": {"task": "length2", "steps": 100, "seed": seed, **config},
        "metrics": {"accuracy": acc, "total_params": 1000 * config.get("experts", 1)},
    }


def test_a_line_per_configuration_over_its_seeds_with_only_the_keys_that_vary():
    rows = [
        row(0, 0.5, experts=4, width=8),
        row(1, 0.7, experts=4, width=8),
        row(2, 0.9, experts=4, width=8),
        row(0, 0.6, experts=1, width=8),
        row(1, 0.1, "failed", experts=1, width=8),  # not finished: not in the table
    ]
    table = results_table(rows, ["accuracy", "total_params"])
    assert table.columns == ("experts",)  # task, steps and width are the same everywhere
    assert [(line.key, line.seeds) for line in table.lines] == [((1,), 1), ((4,), 3)]
    assert table.lines[1].values["accuracy"] == [0.5, 0.7, 0.9]
    md = table.markdown().splitlines()
    assert md[0] == "| experts | seeds | accuracy | total_params |"
    assert md[2] == "| 1 | 1 | 0.600 | 1,000 |"
    assert md[3] == "| 4 | 3 | 0.700 [0.500–0.900] | 4,000 |"
    d = table.to_dict()["lines"][1]
    assert d["experts"] == 4 and d["seeds"] == 3
    assert d["accuracy"]["mean"] == pytest.approx(0.7) and d["accuracy"]["max"] == 0.9


def test_a_run_without_the_metric_is_counted_not_averaged_as_zero():
    rows = [row(0, None, width=8), row(1, 0.8, width=8), row(0, None, width=16)]
    table = results_table(rows, ["accuracy"])
    assert table.lines[0].values["accuracy"] == [None, 0.8]
    assert summary([None, 0.8]) == {"n": 1, "none": 1, "mean": 0.8, "min": 0.8, "max": 0.8}
    assert table.markdown().splitlines()[2:] == [
        "| 8 | 2 | 0.800, 1 none |",
        "| 16 | 1 | 1 none |",
    ]


def test_default_metrics_are_the_sweeps_headline_else_every_number():
    rows = [row(0, 0.5, width=8), row(0, 0.6, width=16)]
    assert results_table(rows, sweep="reasoning").metrics[0] == "accuracy"
    for r in rows:
        r["metrics"]["note"] = "text"  # not a number: not a default column
    assert results_table(rows, sweep="mine").metrics == ("accuracy", "total_params")


def test_bad_requests_are_input_errors():
    rows = [row(0, 0.5, width=8)]
    with pytest.raises(InputError, match="no finished runs"):
        results_table([row(0, 0.5, "failed")], ["accuracy"])
    with pytest.raises(InputError, match=r"'loss'.*accuracy"):
        results_table(rows, ["loss"])
    rows[0]["metrics"]["by_width"] = {"8": 0.5}
    with pytest.raises(InputError, match="not a number"):
        results_table(rows, ["by_width"])


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 2), st.floats(0, 1)), min_size=1, max_size=30
    )
)
def test_every_finished_row_lands_in_exactly_one_line_with_the_right_statistics(cells):
    rows = [row(seed, acc, experts=k) for k, seed, acc in cells]
    table = results_table(rows, ["accuracy"])
    assert sum(line.seeds for line in table.lines) == len(rows)
    for line in table.lines:
        mine = [acc for k, _, acc in cells if (k,) == line.key or not table.columns]
        s = summary(line.values["accuracy"])
        assert sorted(line.values["accuracy"]) == sorted(mine)
        assert s["mean"] == pytest.approx(statistics.fmean(mine))
        assert s["min"] <= s["mean"] + 1e-12 and s["mean"] <= s["max"] + 1e-12


def test_cli_table_of_a_sweep_and_its_errors(tmp_path, capsys):
    common = ["sweep", "selftest", "--scale", "tiny", "--results", str(tmp_path)]
    assert (
        main([*common, "--scratch", str(tmp_path / "s"), "--no-progress", "--only", "value=2,3"])
        == 0
    )
    capsys.readouterr()
    assert main([*common, "--table"]) == 0
    text = capsys.readouterr().out
    assert "selftest/tiny: 2 finished runs" in text
    assert "| value | seeds | value | square |" in text and "| 3 | 1 | 3 | 9 |" in text
    assert main([*common, "--table", "--json", "--metric", "root", "--only", "value=3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"] == ["root"] and len(out["lines"]) == 1
    assert out["lines"][0]["root"]["mean"] == pytest.approx(3**0.5)
    assert main([*common, "--metric", "root"]) == 2
    assert "--metric goes with --table" in capsys.readouterr().err
    assert main(["sweep", "all", "--table"]) == 2
    assert "give its NAME" in capsys.readouterr().err
    assert main([*common, "--table", "--status"]) == 2


def test_the_grid_column_comes_first_and_orders_the_lines():
    rows = [row(0, 0.5, grid="moe", experts=2), row(0, 0.6, grid="dense", experts=1)]
    table = results_table(rows, ["accuracy"])
    assert table.columns == ("grid", "experts")
    assert [line.key for line in table.lines] == [("dense", 1), ("moe", 2)]
