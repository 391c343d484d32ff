"""Training batches per second: the numpy sampler against the torch DeviceSampler, one run.

For each (problem, |V|) both samplers draw ``--batch`` balanced instances ``--repeats``
times, interleaved (numpy, device, numpy, device, ...) so machine noise hits both alike;
the result is each one's median milliseconds per batch and ``numpy_over_device``, the
speed-up of drawing on the device. On a GPU the device times are synchronized.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch

from experiments.commands.train import graph_task
from experiments.device_sampler import DeviceSampler
from models.train import TrainConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problems", default="length2,connectivity,shortest_path")
    p.add_argument("--vertices", default="16,32", help="comma-separated |V| values")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = TrainConfig(device=args.device).resolved_device()  # validates auto|cpu|cuda
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for problem in args.problems.split(","):
        for n in (int(v) for v in args.vertices.split(",")):
            numpy_sample, _ = graph_task(problem, n)
            device_sample = DeviceSampler(problem, n, device, batch_hint=args.batch)
            rng = np.random.default_rng(0)
            numpy_sample(rng, args.batch), device_sample(rng, args.batch)  # warm-up
            sync()
            times: dict[str, list[float]] = {"numpy": [], "device": []}
            for _ in range(args.repeats):
                for name, fn in (("numpy", numpy_sample), ("device", device_sample)):
                    start = time.perf_counter()
                    fn(rng, args.batch)
                    sync()
                    times[name].append(time.perf_counter() - start)
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            rows.append(
                {
                    "problem": problem,
                    "vertices": n,
                    "numpy_ms": round(med["numpy"], 3),
                    "device_ms": round(med["device"], 3),
                    "numpy_over_device": round(med["numpy"] / med["device"], 3),
                    "shortfalls": device_sample.shortfalls(),
                }
            )
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": args.batch,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }
