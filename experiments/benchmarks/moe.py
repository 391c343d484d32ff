"""Forward+backward tokens/s of the MoE layer: grouped dispatch vs dense vs loop vs naive.

The implementation is :mod:`experiments.moe_bench` (its docstring says what is timed); it is
imported only when the benchmark runs, so ``parrots`` starts without loading torch.
"""

from __future__ import annotations

import argparse
from typing import Any

SHAPES = ((1024, 16, 2), (1024, 64, 2), (256, 16, 2), (256, 64, 1), (256, 64, 2))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokens", type=int, default=65_536)
    p.add_argument(
        "--shapes",
        default=None,
        help="width:K:k,... (default: " + ",".join(":".join(map(str, s)) for s in SHAPES) + ")",
    )
    p.add_argument("--hidden-mult", type=int, default=4, help="d_ff = mult · width")
    p.add_argument("--dtype", default=None, choices=("bf16", "fp32", "fp16"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--repeats", type=int, default=10, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--skip-loop", action="store_true", help="do not time the loop reference")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables first")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="also time grouped and dense steps captured as CUDA graphs (GPU only)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="also time grouped and dense steps compiled with torch.compile (with "
        "--cuda-graph, also the compiled steps captured)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from experiments import moe_bench

    return moe_bench.run(args)
