"""The README's tables of results, kept equal to what the committed rows say.

A table that ``parrots sweep NAME --table`` prints is marked in README.md by an HTML comment
naming the command, on the line before it (a rendered page does not show it)::

    <!-- table: parrots sweep memorization --scale paper --table --only entries=65536 -->
    | entries | experts | seeds | ... |
    | --- | --- | --- | ... |

The table is the run of lines that start with ``|`` right after the marker, at the marker's
indentation (so a table may sit inside a list item). ``parrots tables`` rewrites each marked
table from the rows under ``experiments/results/`` (the command's output less its heading
line); ``parrots tables --check`` writes nothing and names the tables that differ. A test runs
the check on the README, so a marked table cannot go stale when rows are added: the numbers
in it are the committed rows' numbers, not a copy made by hand.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from theory.errors import InputError

README = Path(__file__).resolve().parent.parent / "README.md"

MARKER = re.compile(r"^(?P<indent>\s*)<!-- table: (?P<command>.+?) -->\s*$")


@dataclass(frozen=True)
class Block:
    """One marked table: its command, and lines ``start:end`` of the text hold the table."""

    command: str
    indent: str
    start: int
    end: int


def find_blocks(lines: list[str]) -> list[Block]:
    """The marked tables of ``lines``. Raises :class:`InputError` for a marker with no table
    under it (the marker would check nothing)."""
    blocks = []
    fenced = False  # a marker inside a ``` block is an example, not a table to keep
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else MARKER.match(line)
        if match is None:
            continue
        indent = match["indent"]
        end = i + 1
        while end < len(lines) and lines[end].startswith(indent + "|"):
            end += 1
        if end == i + 1:
            raise InputError(f"line {i + 1}: the table marker has no table under it: {line!r}")
        blocks.append(Block(match["command"], indent, i + 1, end))
    return blocks


def render(command: str, results: str | None = None) -> list[str]:
    """The table lines ``command`` prints (``parrots sweep NAME ... --table``), less its
    heading line; ``results`` replaces the results root (tests)."""
    from experiments.cli import build_parser  # the CLI imports this module's command
    from experiments.commands.sweep import table_of

    argv = shlex.split(command)
    if (
        argv[:2] != ["parrots", "sweep"]
        or "--table" not in argv
        or {"--json", "--status"} & set(argv)
    ):
        raise InputError(f"a README table comes from `parrots sweep NAME ... --table`: {command!r}")
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as err:  # argparse has printed why; say which marker it was
        raise InputError(f"the README table marker's command does not parse: {command!r}") from err
    if results is not None:
        args.results = results
    _, _, table = table_of(args)
    return table.markdown().splitlines()


def sync(text: str, results: str | None = None) -> tuple[str, list[str]]:
    """``text`` with every marked table regenerated, and the commands whose table changed."""
    lines = text.split("\n")
    stale = []
    for block in reversed(find_blocks(lines)):  # from the end, so earlier indices hold
        fresh = [block.indent + line for line in render(block.command, results)]
        if lines[block.start : block.end] != fresh:
            stale.append(block.command)
            lines[block.start : block.end] = fresh
    return "\n".join(lines), stale[::-1]
