"""``parrots bench moe`` runs on CPU at a tiny size and reports every ratio."""

from __future__ import annotations

import json

import pytest
import torch

from experiments.cli import main


def test_bench_moe_runs_small_on_cpu(capsys):
    code = main(
        [
            "bench",
            "moe",
            "--tokens",
            "64",
            "--shapes",
            "16:4:2,8:4:1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dtype"] == "fp32" and report["tokens"] == 64
    assert [(r["width"], r["experts"], r["top_k"]) for r in report["rows"]] == [
        (16, 4, 2),
        (8, 4, 1),
    ]
    # operations that launch work in one fp32 step, as measured with torch 2.13: a change to
    # the grouped path that adds launches fails here (README, "MoE layer benchmark")
    most = {(16, 4, 2): 52, (8, 4, 1): 49}
    for row in report["rows"]:
        for key in ("grouped_over_dense", "grouped_over_loop", "grouped_over_naive"):
            assert row[key] > 0
        assert row["naive_kernels"] > 10
        assert row["grouped_kernels"] <= most[(row["width"], row["experts"], row["top_k"])]


def test_count_kernels_counts_work_not_views():
    from experiments.moe_bench import count_kernels

    x = torch.randn(4, 6, requires_grad=True)

    def step() -> None:
        y = (x.view(24).t() * 2).view(4, 6).transpose(0, 1)  # views: not counted
        y.sum().backward()  # mul, sum; backward: the seed (ones_like), expand (a view), mul

    assert count_kernels(step) == 4


def test_bench_moe_bad_shapes_exit_2(capsys):
    assert main(["bench", "moe", "--shapes", "16x4x2"]) == 2
    assert "--shapes" in capsys.readouterr().err


def test_bench_moe_cuda_graph_needs_a_gpu(capsys):
    args = ["bench", "moe", "--tokens", "64", "--shapes", "16:4:2", "--repeats", "1"]
    assert main([*args, "--device", "cpu", "--cuda-graph"]) == 2
    assert "--cuda-graph needs a CUDA device" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_bench_moe_times_captured_steps_on_a_gpu(capsys):
    args = ["bench", "moe", "--tokens", "4096", "--shapes", "256:16:2", "--repeats", "2"]
    assert main([*args, "--cuda-graph", "--skip-loop", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["graph_grouped_tokens_per_s"] > 0 and row["graph_grouped_over_dense"] > 0


# torch 2.13's compiler raises deprecation warnings of its own while it works (Dynamo
# instantiates autograd Functions; Inductor imports torch.jit.script_method), which this
# project's pytest settings would turn into errors
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.slow
def test_bench_moe_compile_times_compiled_steps_and_checks_them(capsys):
    """``--compile`` compiles the whole layer with no graph break (fullgraph) and agrees with
    the loop reference to bf16 rounding; fp32 on the CPU cannot compile (grouped_mm's shape
    function wants bf16) and the row says so instead of failing the bench. Every shape, and
    the error check, uses the one graph it times: with Dynamo's limit at one graph per
    function, two shapes still compile (the default five would pass the limit of 8)."""
    args = ["bench", "moe", "--tokens", "128", "--shapes", "16:4:2,16:8:1", "--repeats", "1"]
    args += ["--warmup", "0", "--device", "cpu", "--skip-loop", "--compile", "--json"]
    with torch._dynamo.config.patch(recompile_limit=1):
        assert main([*args, "--dtype", "bf16"]) == 0
    for row in json.loads(capsys.readouterr().out)["rows"]:
        assert "compile_skipped" not in row, row.get("compile_skipped")
        assert 0 <= row["compiled_vs_loop_rel_err"] < 2e-2  # bf16: 8 bits of mantissa
        assert row["compiled_grouped_over_dense"] > 0 and row["compiled_grouped_over_naive"] > 0
        assert row["compile_s"] > 0
    assert main([*args, "--dtype", "fp32"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][1]
    assert "BF16" in row["compile_skipped"] and "compiled_grouped_tokens_per_s" not in row
    assert row["grouped_over_dense"] > 0  # the eager timings stay


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the compiler's own (see above)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_bench_moe_captures_compiled_steps_on_a_gpu(capsys):
    args = ["bench", "moe", "--tokens", "4096", "--shapes", "256:16:2", "--repeats", "2"]
    assert main([*args, "--compile", "--cuda-graph", "--skip-loop", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert "compile_skipped" not in row and "graph_compiled_skipped" not in row, row
    assert row["compiled_vs_loop_rel_err"] < 2e-2
    assert row["graph_compiled_grouped_over_dense"] > 0
