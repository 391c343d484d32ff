"""The width-threshold explorer: moving a slider redraws the theory's numbers; it renders
headless; `parrots bounds` and `parrots explore` through the real entry point."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from experiments.cli import main
from paper_figures import explorer as E
from paper_figures.registry import figure_makers
from theory import bounds as B
from theory.errors import InputError


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _drawn(ex: E.Explorer) -> dict:
    a = ex.artists
    return {
        "lower": list(a["lower_bound"].get_ydata()),
        "construction": list(a["construction"].get_ydata()),
        "k_star": list(a["k_star"].get_xdata()),
        "k_star_visible": a["k_star"].get_visible(),
        "matched_x": np.asarray(a["matched"].get_xdata()),
        "matched_y": np.asarray(a["matched"].get_ydata()),
        "selected": (list(a["selected"].get_xdata()), list(a["selected"].get_ydata())),
    }


def test_update_redraws_the_bounds_of_the_new_settings():
    ex = E.Explorer(E.Settings(vertices=64, heads=2, bits=16))
    before = _drawn(ex)
    assert before["lower"] == [2, 2] and before["construction"] == [132, 132]
    assert not before["k_star_visible"]  # (m + 2) 16 >= 62 holds at m = 2: vacuous
    ex.update(vertices=1024, heads=1, log2_experts=10.0)
    after = _drawn(ex)
    assert after["lower"] == [63, 63] and after["construction"] == [2052, 2052]
    assert after["k_star"] == [1891, 1891] and after["k_star_visible"]
    expected = [B.matched_moe_width(1024, 2052, int(k), heads=1).width for k in after["matched_x"]]
    assert after["matched_y"].tolist() == expected
    assert after["selected"] == ([1024], [B.matched_moe_width(1024, 2052, 1024, heads=1).width])
    assert "K*=1891" in ex.title.get_text()
    assert ex.sliders["heads"].val == 1  # the sliders follow the settings


def test_moving_a_slider_calls_update():
    ex = E.Explorer(E.Settings(vertices=1024, heads=1, bits=16))
    ex.sliders["bits"].set_val(8)
    assert ex.settings.bits == 8
    assert _drawn(ex)["lower"] == [B.lower_bound_width(1024, 1, 8)] * 2 == [127, 127]
    ex.sliders["mlp_ratio"].set_val(2.0)
    assert ex.current.k_star == B.expert_threshold(1024, 1, 8, mlp_ratio=2.0)
    ex.sliders["log2_vertices"].set_val(8.0)
    assert ex.settings.vertices == 256 and _drawn(ex)["construction"] == [516, 516]


def test_a_bad_setting_raises_and_changes_nothing():
    ex = E.Explorer()
    with pytest.raises(InputError, match="heads"):
        ex.update(heads=0)
    with pytest.raises(InputError, match="unknown"):
        ex.update(colour="red")
    assert ex.settings == E.Settings()


def test_empirical_rows_are_read_and_overlaid_for_the_current_size(tmp_path):
    rows = [
        {"status": "ok", "config": {"vertices": 64, "experts": 4, "heads": 2},
         "metrics": {"width_threshold": 48}},
        {"status": "ok", "config": {"vertices": 128, "experts": 4},
         "metrics": {"width_threshold": 96}},
        {"status": "failed", "config": {"vertices": 64, "experts": 8},
         "metrics": {"width_threshold": 1}},
        {"status": "ok", "config": {"vertices": 64}, "metrics": {"accuracy": 1.0}},
    ]  # fmt: skip
    folder = tmp_path / "learnability"
    folder.mkdir()
    text = "\n".join(json.dumps(r) for r in rows) + '\n{"torn'
    (folder / "widths.jsonl").write_text(text)
    found = E.load_empirical(tmp_path)
    assert [(p["vertices"], p["experts"], p["width"]) for p in found] == [
        (64, 4, 48.0),
        (128, 4, 96.0),
    ]
    ex = E.Explorer(E.Settings(vertices=64), found)
    assert ex.artists["empirical"].get_offsets().tolist() == [[4.0, 48.0]]
    ex.update(vertices=128)
    assert ex.artists["empirical"].get_offsets().tolist() == [[4.0, 96.0]]
    assert E.load_empirical(tmp_path / "absent") == []


def test_explore_renders_headless(tmp_path, capsys):
    out = tmp_path / "explorer.png"
    args = ["explore", "--vertices", "256", "--heads", "1", "--bits", "8", "--save", str(out)]
    assert main([*args, "--results", str(tmp_path)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_bounds_command_prints_the_theory_table(capsys):
    args = ["bounds", "--vertices", "1024", "--heads", "1", "--bits", "16", "--experts", "1,4096"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lower_bound_width"] == 63 and report["construction_width"] == 2052
    assert report["expert_threshold"] == 1891 and report["expert_threshold_approx"] == 1061
    assert [r["below_lower_bound"] for r in report["rows"]] == [False, True]
    assert report["rows"][0]["width"] == 2052
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "K*" in text and "1891" in text and "2052" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bounds", "--vertices", "2"], "vertices"),
        (["bounds", "--experts", "1,x"], "--experts"),
        (["bounds", "--experts", "0"], "--experts"),
        (["bounds", "--bits", "0"], "bits"),
        (["explore", "--heads", "0", "--save", "x.png"], "heads"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_explore_without_a_display_asks_for_save(capsys):
    assert main(["explore"]) == 2
    assert "--save" in capsys.readouterr().err


def test_fig_widths_is_discovered_and_draws(tmp_path):
    make = figure_makers()["fig_widths"]
    (path,) = make(tmp_path)
    assert path.name == "fig_widths.png" and path.stat().st_size > 10_000
