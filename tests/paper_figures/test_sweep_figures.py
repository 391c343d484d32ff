"""The sweep figures render (PNG and PDF) from small fixture result files written here, and
skip with a message when their file is absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper_figures import (
    fig_depth,
    fig_learnability,
    fig_memorization,
    fig_precision,
    fig_reasoning,
    fig_threshold,
)
from paper_figures.explorer import load_empirical
from paper_figures.registry import figure_makers
from paper_figures.sweep_rows import every_scale, mean_std, sweep_rows


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def row(sweep: str, i: int, config: dict, metrics: dict, status: str = "ok") -> dict:
    return {
        "sweep": sweep,
        "run_id": f"{sweep}{i}",
        "status": status,
        "config": config,
        "metrics": metrics,
    }


THR = {"steps": 1500, "batch": 256, "seed": 0}


def reasoning_rows() -> list[dict]:
    out, i = [], 0
    for layers in (1, 2):
        for seed in (0, 1):
            base = {"layers": layers, "vertices": 8, "seed": seed, "top_k": 1}
            for w in (8, 16):
                out.append(
                    row(
                        "r",
                        i := i + 1,
                        {**base, "grid": "dense", "width": w, "experts": 1},
                        {"accuracy": 0.5 + w / 100 + seed / 100, "total_params": 100 * w},
                    )
                )
            for k in (2, 4):
                for top_k in (1, 2):
                    out.append(
                        row(
                            "r",
                            i := i + 1,
                            {**base, "grid": "moe", "width": 8, "experts": k, "top_k": top_k},
                            {"accuracy": 0.55, "total_params": 700 + 100 * k},
                        )
                    )
            out.append(
                row(
                    "r",
                    i := i + 1,
                    {
                        **base,
                        "grid": f"matched_L{layers}_V8_K2",
                        "width": 10,
                        "experts": 2,
                        "matched_dense_width": 16,
                    },
                    {"accuracy": 0.6, "total_params": 1590},
                )
            )
    out.append(row("r", 999, {"layers": 1, "vertices": 8, "grid": "dense"}, {}, "failed"))
    return out


def depth_rows() -> list[dict]:
    out, i = [], 0
    for problem in ("connectivity", "shortest_path"):
        for layers in (1, 2, 4):
            for seed in (0, 1):
                base = {"problem": problem, "layers": layers, "vertices": 8, "seed": seed}
                for w in (16, 32):
                    cfg = {**base, "grid": "dense", "width": w, "experts": 1, "top_k": 1}
                    out.append(row("d", i := i + 1, cfg, {"accuracy": 0.6 + layers / 20}))
                for k in (4, 16):
                    cfg = {**base, "grid": "moe", "width": 16, "experts": k, "top_k": 1}
                    out.append(row("d", i := i + 1, cfg, {"accuracy": 0.6 + seed / 50}))
    return out


def test_sweep_figures_render_png_and_pdf_from_fixture_rows(tmp_path: Path) -> None:
    res, out = tmp_path / "results", tmp_path / "out"
    write(res / "reasoning" / "small.jsonl", reasoning_rows())
    write(res / "depth" / "small.jsonl", depth_rows())
    mem = [
        row(
            "m",
            i,
            {"entries": n, "experts": k, "width": 16, "mlp_hidden": 32, "seed": 0},
            {
                "entries_memorized": min(n, 100 * k),
                "total_params": 1000 * k,
                "bits_per_total_param": 0.8,
                "bits_per_active_param": 0.8 * k,
            },
        )
        for i, (n, k) in enumerate((n, k) for n in (128, 512) for k in (1, 2, 4))
    ]
    write(res / "memorization" / "small.jsonl", mem)
    thr = [
        row(
            "t",
            v,
            {"vertices": v, "experts": 1, "heads": 2, "layers": 2, "target": 0.95, **THR},
            {"width_threshold": w, "max_width_tried": 32},
        )
        for v, w in ((5, 8), (6, 16), (8, None))
    ]
    write(res / "threshold" / "small.jsonl", thr)
    study = {
        "rows": [
            {
                "vertices": n,
                "dtype": d,
                "instances": 10,
                "exact_at_provable_sharpness": d == "float64",
                "errors_at_provable_sharpness": 0 if d == "float64" else n // 4,
                "smallest_exact_scale": 0.25 if d == "float64" else None,
            }
            for n in (4, 8, 16)
            for d in ("float64", "float16")
        ],
        "summary": {},
    }
    write(res / "constructions" / "length2_precision.jsonl", [study])
    made = []
    for module in (fig_reasoning, fig_depth, fig_memorization, fig_threshold, fig_precision):
        paths = module.make(out, results_dir=res)
        assert [p.suffix for p in paths] == [".png", ".pdf"]
        assert all(p.stat().st_size > 5000 for p in paths)
        made += paths
    assert len({p.name for p in made}) == 10
    # the threshold rows meet the explorer's overlay contract: two points, not the miss
    assert sorted((p["vertices"], p["width"]) for p in load_empirical(res)) == [(5, 8), (6, 16)]


def test_fig_depth_draws_every_scale_and_never_pools_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "depth" / "small.jsonl", depth_rows())
    paper = []
    for problem in ("connectivity", "shortest_path"):
        base = {"problem": problem, "layers": 2, "vertices": 16, "seed": 0, "top_k": 1}
        paper += [
            row(
                "d",
                100 + len(paper),
                {**base, "grid": "dense", "width": 32, "experts": 1},
                {"accuracy": 0.9},
            ),
            row(
                "d",
                101 + len(paper),
                {**base, "grid": "moe", "width": 32, "experts": 4},
                {"accuracy": 0.7},
            ),
        ]
    write(tmp_path / "depth" / "paper.jsonl", paper)
    drawn = []
    monkeypatch.setattr(fig_depth, "save", lambda fig, out, stem: drawn.append(fig) or [])
    fig_depth.make(tmp_path / "out", results_dir=tmp_path)
    (fig,) = drawn
    assert "depth/small.jsonl" in fig._suptitle.get_text()
    assert "depth/paper.jsonl" in fig._suptitle.get_text()
    k_panel = fig.axes[1]  # connectivity, accuracy against K
    handles, labels = k_panel.get_legend_handles_labels()
    lines = {label: handle.lines[0] for handle, label in zip(handles, labels, strict=True)}
    ours = lines["2 layer(s), m=32 (|V|=16, paper)"]
    assert list(ours.get_xdata()) == [1, 4] and list(ours.get_ydata()) == [0.9, 0.7]
    assert {"1 layer(s), m=16 (|V|=8, small)", "4 layer(s), m=16 (|V|=8, small)"} <= set(lines)


def test_the_matched_curve_runs_by_k_from_the_dense_model_it_matches() -> None:
    rows = reasoning_rows()
    two = [r for r in rows if r["config"].get("layers") == 2 and r["status"] == "ok"]
    dense = [r for r in two if r["config"]["grid"] == "dense"]
    matched = [r for r in two if r["config"]["grid"].startswith("matched")]
    extra = {**matched[0], "config": {**matched[0]["config"], "experts": 8, "width": 4}}
    extra["metrics"] = {"accuracy": 0.52, "total_params": 1400}  # fewer params, listed first
    curve = fig_reasoning.matched_curve(dense, [extra, *matched])
    # K = 1 is dense width 16 over seeds 0 and 1: 0.66 and 0.67
    assert [(k, w) for k, w, _, _ in curve] == [(1, 16), (2, 10), (8, 4)]
    assert curve[0][2] == pytest.approx(0.665) and curve[1][2:] == (0.6, 0.0)
    assert fig_reasoning.matched_curve(dense, []) == []
    no_ref = fig_reasoning.matched_curve([r for r in dense if r["config"]["width"] != 16], matched)
    assert [k for k, *_ in no_ref] == [2]  # the matched dense width has no rows: no K = 1


def test_figures_skip_with_a_message_when_results_are_absent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    modules = (
        fig_reasoning,
        fig_depth,
        fig_memorization,
        fig_threshold,
        fig_precision,
        fig_learnability,
    )
    for module in modules:
        assert module.make(tmp_path / "out", results_dir=tmp_path) == []
    assert capsys.readouterr().out.count("skipped") == len(modules)


def test_sweep_rows_take_the_largest_scale_and_the_last_row_of_a_run(tmp_path: Path) -> None:
    write(tmp_path / "s" / "tiny.jsonl", [row("s", 1, {}, {"x": 1})])
    assert sweep_rows("s", tmp_path)[1] == tmp_path / "s" / "tiny.jsonl"
    first = row("s", 1, {}, {"x": 1}, "failed")
    write(tmp_path / "s" / "small.jsonl", [first, row("s", 1, {}, {"x": 2})])
    with open(tmp_path / "s" / "small.jsonl", "a") as f:
        f.write('{"torn')
    rows, path = sweep_rows("s", tmp_path)
    assert path == tmp_path / "s" / "small.jsonl"
    assert [r["metrics"]["x"] for r in rows] == [2]
    write(tmp_path / "s" / "paper.jsonl", [row("s", 1, {}, {}, "failed")])  # no ok row: skipped
    assert [(scale, len(r)) for scale, r, _ in every_scale("s", tmp_path)] == [
        ("small", 1),
        ("tiny", 1),
    ]
    stats = mean_std(
        [{"k": 1, "v": 1.0}, {"k": 1, "v": 3.0}, {"k": 0, "v": 5.0}],
        lambda r: r["k"],
        lambda r: r["v"],
    )
    assert list(stats) == [0, 1] and stats[1][:2] == (2.0, pytest.approx(2**0.5))


def test_every_sweep_figure_is_registered() -> None:
    names = set(figure_makers())
    assert {"fig_reasoning", "fig_depth", "fig_memorization", "fig_threshold"} <= names
    assert "fig_learnability" in names
    assert "fig_precision" in names


def learnability_row(i: int, layers: int, vertices: int, width: int, **config) -> dict:
    steps = config.pop("steps", 6000)
    device = config.pop("device", "NVIDIA H100 80GB HBM3")
    evals = [[s, 0.5 + 0.4 * s / steps] for s in range(250, steps + 1, 250)]
    base = {
        "layers": layers,
        "vertices": vertices,
        "width": width,
        "batch": 1024,
        "seed": 0,
        "steps": steps,
        "lr": 0.001,
        "grid": "g",
        "target_accuracy": 0.98,
        **config,
    }
    return {
        **row("l", i, base, {"accuracy": evals[-1][1], "stopped_early": i == 1}),
        "curve": {"evals": evals},
        "provenance": {"device": device},
    }


def test_learnability_panels_label_what_varies_within_a_panel(tmp_path: Path) -> None:
    rows = [
        learnability_row(1, 2, 16, 64),
        learnability_row(2, 2, 16, 32),
        learnability_row(3, 2, 32, 64),
        learnability_row(4, 2, 32, 64, steps=12000, curriculum=16),
        learnability_row(5, 1, 16, 128, device="cpu"),
        learnability_row(6, 1, 16, 256),
        {**learnability_row(7, 1, 32, 8), "curve": {"evals": []}},  # nothing to draw
    ]
    drawn = fig_learnability.panels(rows)
    assert list(drawn) == [(2, 16), (2, 32), (1, 16)]  # 2 layers first
    assert [line.label for line in drawn[(2, 16)]] == ["m=32", "m=64"]
    # a label names what sets a run apart from most of its panel (the first seen on a tie)
    assert [line.label for line in drawn[(2, 32)]] == ["m=64", "m=64, curriculum=16, steps=12000"]
    assert [line.label for line in drawn[(1, 16)]] == ["m=128, cpu", "m=256, H100"]
    more = [*rows[2:4], learnability_row(8, 2, 32, 128), learnability_row(9, 2, 32, 16, lr=0.01)]
    assert [line.label for line in fig_learnability.panels(more)[(2, 32)]] == [
        "m=16, lr=0.01",
        "m=64",
        "m=64, curriculum=16, steps=12000",
        "m=128",
    ]
    without = [
        learnability_row(10, 1, 8, 32, curriculum=4),
        *[learnability_row(11 + i, 1, 8, 32) for i in range(2)],
    ]
    assert [line.label for line in fig_learnability.panels(without)[(1, 8)]] == [
        "m=32, curriculum=4",
        "m=32",
        "m=32",
    ]
    first = drawn[(2, 16)][1]
    assert first.stopped and first.instances[0] == 250 * 1024 / 1e6
    write(tmp_path / "learnability" / "paper.jsonl", rows)
    paths = fig_learnability.make(tmp_path / "out", results_dir=tmp_path)
    assert [p.suffix for p in paths] == [".png", ".pdf"]


def test_threshold_figure_draws_each_scale_with_its_budget(tmp_path: Path) -> None:
    base = {"experts": 1, "heads": 2, "layers": 2, "target": 0.95}
    small = [
        row("t", v, {"vertices": v, **base, **THR}, {"width_threshold": 16, "max_width_tried": 16})
        for v in (5, 6)
    ]
    paper = [
        row(
            "t",
            10 * v + seed,
            {"vertices": v, **base, "steps": 3000, "batch": 1024, "seed": seed},
            {"width_threshold": None if v == 12 and seed else 32, "max_width_tried": 64},
        )
        for v in (8, 12)
        for seed in (0, 1)
    ]
    write(tmp_path / "threshold" / "small.jsonl", small)
    write(tmp_path / "threshold" / "paper.jsonl", paper)
    drawn = fig_threshold.series(tmp_path)
    assert [(d.scale, d.layers) for d in drawn] == [("paper", 2), ("small", 2)]
    assert drawn[0].label.startswith("paper: 2 layers, ≤ 3,000 steps × 1,024, 2 seeds")
    assert sorted(drawn[0].found) == [(8, 32), (8, 32), (12, 32)]
    assert drawn[0].missed == [(12, 64)]
    assert drawn[1].found == [(5, 16), (6, 16)] and "1 seed;" in drawn[1].label
    assert len(fig_threshold.make(tmp_path / "out", results_dir=tmp_path)) == 2


def test_threshold_figure_adds_the_width_grids_of_the_learnability_sweep(tmp_path):
    def one(i: int, vertices: int, width: int, best: float, grid: str = "one_layer_budget"):
        config = {
            "layers": 1,
            "vertices": vertices,
            "width": width,
            "grid": grid,
            "heads": 2,
            "steps": 12000,
            "batch": 512,
            "target_accuracy": 0.98,
        }
        return row("l", i, config, {"best_accuracy": best})

    rows = [
        one(1, 8, 8, 0.70),
        one(2, 8, 32, 0.99),
        one(3, 8, 16, 0.981),  # rows in any order: the smallest width that reached it wins
        one(4, 12, 8, 0.6),
        one(5, 12, 16, 0.9),
        one(6, 8, 8, 0.99, grid="one_layer"),  # not a width grid at this scale: not drawn
    ]
    write(tmp_path / "learnability" / "small.jsonl", rows)
    curriculum = [  # a paper-scale 2-layer width grid, its curriculum named in the label
        row(
            "c",
            i,
            {
                **one(0, 32, w, 0)["config"],
                "layers": 2,
                "grid": "two_layer_curriculum",
                "curriculum": 16,
            },
            {"best_accuracy": best},
        )
        for i, (w, best) in enumerate([(64, 0.67), (128, 0.981)])
    ]
    write(tmp_path / "learnability" / "paper.jsonl", curriculum)
    paper, small = fig_threshold.learnability_series(tmp_path)
    assert small.found == [(8, 16)] and small.missed == [(12, 16)]
    assert small.label.startswith("small: 1 layer, ≤ 12,000 steps × 512")
    assert (paper.layers, paper.found, paper.missed) == (2, [(32, 128)], [])
    assert "2 layers, ≤ 12,000 steps × 512, curriculum from |V| = 16" in paper.label
    assert len(fig_threshold.make(tmp_path / "out", results_dir=tmp_path)) == 2
