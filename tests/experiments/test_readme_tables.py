"""The README's marked tables: regenerated from the rows, and checked against them."""

from __future__ import annotations

import pytest

from experiments.cli import main
from experiments.readme_tables import README, find_blocks, render, sync
from theory.errors import InputError

SWEEP = "parrots sweep selftest --scale tiny --table"


@pytest.fixture
def results(tmp_path):
    """A results root with two finished selftest runs (value 2 and 3)."""
    common = ["sweep", "selftest", "--scale", "tiny", "--results", str(tmp_path / "r")]
    argv = [*common, "--scratch", str(tmp_path / "s"), "--no-progress", "--only", "value=2,3"]
    assert main(argv) == 0
    return str(tmp_path / "r")


def test_the_readme_tables_are_what_the_committed_rows_say():
    """What `parrots tables --check` does on README.md: every marked table is the command's
    output on the committed rows (run `parrots tables` after adding rows)."""
    text = README.read_text()
    blocks = find_blocks(text.split("\n"))
    assert len(blocks) >= 4  # the paper-scale tables of reasoning, depth and memorization
    fresh, stale = sync(text)
    assert stale == [], f"stale README tables (run `parrots tables`): {stale}"
    assert fresh == text


def test_a_stale_table_is_rewritten_and_the_text_around_it_kept(results):
    table = render(SWEEP, results)
    assert table[0] == "| value | seeds | value (metric) | square |"
    assert "| 3 | 1 | 3.000 | 9.000 |" in table
    text = "\n".join(
        [
            "# notes",
            "- a list item:",
            f"  <!-- table: {SWEEP} -->",
            "  | value | seeds |",  # stale: written by hand, by an older command
            "  | 1 | 1 |",
            "",
            f"<!-- table: {SWEEP} --only value=2 -->",
            *render(f"{SWEEP} --only value=2", results),  # up to date
            "after",
        ]
    )
    fresh, stale = sync(text, results)
    assert stale == [SWEEP]
    lines = fresh.split("\n")
    assert lines[:3] == text.split("\n")[:3]
    assert lines[3 : 3 + len(table)] == ["  " + line for line in table]  # the item's indent
    assert lines[3 + len(table) :] == text.split("\n")[5:]
    assert sync(fresh, results) == (fresh, [])


def test_the_check_names_a_stale_table_and_writes_nothing(tmp_path, results, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text(f"<!-- table: {SWEEP} -->\n| old |\n")
    # the command's --results is the default root: point the rows at the fixture's
    text = doc.read_text().replace("--table", f"--table --results {results}")
    doc.write_text(text)
    assert main(["tables", "--readme", str(doc), "--check"]) == 1
    assert "stale: parrots sweep selftest" in capsys.readouterr().out
    assert doc.read_text() == text
    assert main(["tables", "--readme", str(doc)]) == 0
    assert "| 3 | 1 | 3.000 | 9.000 |" in doc.read_text()
    assert main(["tables", "--readme", str(doc), "--check"]) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"<!-- table: {SWEEP} -->\n\n| a |", "no table under it"),
        ("<!-- table: parrots sweep selftest --scale tiny -->\n| a |", "--table"),
        ("<!-- table: ls -l -->\n| a |", "parrots sweep"),
        (f"<!-- table: {SWEEP} --json -->\n| a |", "--table"),
        (f"<!-- table: {SWEEP} --status -->\n| a |", "--table"),
        ("<!-- table: parrots sweep nosuch --table -->\n| a |", "unknown sweep"),
        (f"<!-- table: {SWEEP} --bogus -->\n| a |", "does not parse"),
    ],
)
def test_a_marker_that_cannot_be_checked_is_an_error(text, message, results):
    with pytest.raises(InputError, match=message):
        sync(text, results)


def test_a_missing_file_is_an_error(tmp_path, capsys):
    assert main(["tables", "--readme", str(tmp_path / "nope.md")]) == 2
    assert "no file at" in capsys.readouterr().err


def test_a_marker_inside_a_code_fence_is_an_example_and_left_alone(results):
    text = f"```\n<!-- table: {SWEEP} -->\n| made up |\n```\n"
    assert find_blocks(text.split("\n")) == []
    assert sync(text, results) == (text, [])
