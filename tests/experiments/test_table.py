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
    assert d["config"] == {"experts": 4} and d["seeds"] == 3
    acc = d["metrics"]["accuracy"]
    assert acc["mean"] == pytest.approx(0.7) and acc["max"] == 0.9


def test_names_with_numbers_sort_by_the_numbers_in_them():
    grids = ["m_L2_K16", "m_L2_K2", "dense", "m_L10_K1", "m_L2_K4", "2x", "10x"]
    rows = [row(0, 0.5, grid=g) for g in grids]
    table = results_table(rows, ["accuracy"])
    assert [line.key[0] for line in table.lines] == [
        "2x",
        "10x",
        "dense",
        "m_L2_K2",
        "m_L2_K4",
        "m_L2_K16",
        "m_L10_K1",
    ]


def test_a_run_without_the_metric_is_counted_not_averaged_as_zero():
    rows = [row(0, None, width=8), row(1, 0.8, width=8), row(0, None, width=16)]
    table = results_table(rows, ["accuracy"])
    assert table.lines[0].values["accuracy"] == [None, 0.8]
    s = summary([None, 0.8])
    assert s == {"n": 1, "none": 1, "nonfinite": 0, "mean": 0.8, "min": 0.8, "max": 0.8}
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
    assert "| value | seeds | value (metric) | square |" in text
    assert "| 3 | 1 | 3.000 | 9.000 |" in text  # the config's int, the metrics' floats
    assert main([*common, "--table", "--json", "--metric", "root", "--only", "value=3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"] == ["root"] and len(out["lines"]) == 1
    assert out["lines"][0]["metrics"]["root"]["mean"] == pytest.approx(3**0.5)
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


def test_nan_lists_clashing_names_and_numbers_print_as_what_they_are():
    rows = [
        row(0, float("nan"), lr=0.0003, widths=[8, 16]),
        row(1, 0.5, lr=0.0003, widths=[8, 16]),
        row(0, 1.0, lr=0.001, widths=[8, 32]),  # a list value varies: grouped by its text
    ]
    rows[0]["metrics"]["steps"] = rows[1]["metrics"]["steps"] = 0
    rows[2]["metrics"]["steps"] = 100
    for r in rows:
        r["config"]["steps"] = r["metrics"]["steps"] + 1
    table = results_table(rows, ["accuracy", "steps"])
    assert table.columns == ("lr", "steps", "widths")
    md = table.markdown().splitlines()
    assert md[0] == "| lr | steps | widths | seeds | accuracy | steps (metric) |"
    assert md[2] == "| 0.0003 | 1 | [8, 16] | 2 | 0.500, 1 nan/inf | 0 |"
    assert md[3] == "| 0.001 | 101 | [8, 32] | 1 | 1.000 | 100 |"
    assert summary([float("inf"), None, 2.0])["nonfinite"] == 1


def test_values_that_compare_equal_but_differ_in_type_are_different_lines():
    rows = [row(0, 0.5, flag=True), row(0, 0.6, flag=1), row(0, 0.7)]
    table = results_table(rows, ["accuracy"])
    assert table.columns == ("flag",) and len(table.lines) == 3


def test_a_metric_that_is_text_in_one_row_is_no_default_column():
    rows = [row(0, 0.5, width=8), row(0, 0.6, width=16)]
    rows[0]["metrics"]["device"] = "cpu"
    rows[1]["metrics"]["device"] = 3  # a number in one row only
    assert "device" not in results_table(rows, sweep="mine").metrics
    with pytest.raises(InputError, match="not a number"):
        results_table(rows, ["device"])
