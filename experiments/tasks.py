"""What one run of a sweep does: ``TASKS[config["task"]](config, scratch) -> (metrics, curve)``.

``config`` is a run's full config (:meth:`experiments.sweep.SweepConfig.runs`); ``scratch`` a
folder for the trainer's checkpoint and metrics (kept out of ``experiments/results/``, so a
run interrupted mid-training resumes from its last checkpoint). ``metrics`` is a flat dict of
numbers, ``curve`` the learning-curve summary: the held-out evaluations as (step, accuracy).

Tasks:

``length2``    balanced length-2 path (``experiments.commands.train.graph_task``): a dense or
               MoE ``models.Transformer`` with factorized embeddings, held-out accuracy.
               Optional keys: ``target_accuracy`` (stop early once reached), ``curriculum``
               (start |V| of a curriculum over |V| ramping over the first half of the steps),
               ``sampler`` (``numpy``, the default, or ``device``: the same distribution drawn
               by torch on the training device, ``experiments.device_sampler``),
               ``cuda_graph`` (replay forward and backward as CUDA graphs, GPU only;
               usually an execution option, ``parrots sweep ... --cuda-graph``),
               ``compile`` (the forward compiled by ``torch.compile``; an execution
               option, ``parrots sweep ... --compile``; an MoE on a GPU only),
               ``device_sampler`` (an execution option, ``parrots sweep ...
               --device-sampler``: ``sampler`` defaults to ``device`` instead of ``numpy``;
               a run's own ``sampler`` and a curriculum, drawn with numpy, keep theirs).
``graph``      as ``length2`` for any problem of ``theory.problems`` named by ``problem``:
               ``connectivity`` (2 classes) or ``shortest_path`` (n classes: the distance,
               0 = unreachable; accuracy is exact-distance accuracy). For the deeper models
               of the depth sweep; the query and balance are those of ``parrots train --task``.
``phonebook``  a closed-book phone book (``constructions.memorizer.phone_book``: distinct
               names, one token each, → random numbers of ``value_bits`` bits); the model is
               trained on the entries and scored by exact-match recall of those same entries.
``threshold``  trains dense ``length2`` models at the widths ``widths`` in increasing order
               and reports the first that reaches ``target`` held-out accuracy
               (``width_threshold``; None if none does).
``selftest``   no training: sleeps ``sleep`` seconds and returns ``value``; kills its own
               process when ``die`` is set (only in a spawned worker!); raises when
               ``fail`` is set (for the runner's tests).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from theory.errors import InputError

Curve = list[list[float]]
Task = Callable[[dict[str, Any], Path], tuple[dict[str, Any], Curve]]
HELD_OUT_SEED_OFFSET = 1_000_003  # as ``parrots train``: the held-out set has its own seed


def _curve(scratch: Path) -> Curve:
    """(step, accuracy) of every evaluation in the trainer's metrics.jsonl; on a resumed run
    the later evaluation of a step wins."""
    path = scratch / "metrics.jsonl"
    if not path.exists():
        return []
    by_step: dict[int, float] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == "eval":
            by_step[int(row["step"])] = round(float(row["accuracy"]), 5)
    return [[s, a] for s, a in sorted(by_step.items())]


def _train_config(config: dict[str, Any], steps: int | None = None, target: float | None = None):
    from models.train import TrainConfig

    return TrainConfig(
        steps=steps if steps is not None else int(config["steps"]),
        batch_size=int(config["batch"]),
        lr=float(config["lr"]),
        warmup_steps=min(100, int(config["steps"]) // 10),
        eval_interval=int(config.get("eval_interval", 100)),
        log_interval=int(config.get("eval_interval", 100)),
        target_accuracy=target,
        seed=int(config["seed"]),
        device=str(config.get("device", "auto")),
        cuda_graph=bool(config.get("cuda_graph", False)),
        compile=bool(config.get("compile", False)),
        guard_interval=config.get("guard_interval", 1),  # TrainConfig checks it
    )


def _graph_once(
    config: dict[str, Any],
    width: int,
    scratch: Path,
    target: float | None = None,
    problem: str = "length2",
) -> tuple[dict[str, Any], Curve]:
    import torch

    from experiments.commands.train import graph_task, training_sampler
    from models.train import train
    from models.transformer import ModelConfig, Transformer
    from theory.encoding import pair_blocks, vocab_size
    from theory.problems import num_classes

    n, seed = int(config["vertices"]), int(config["seed"])
    sample, length = graph_task(problem, n)
    model_cfg = ModelConfig(
        vocab_size=vocab_size(n),
        max_len=length,
        width=width,
        heads=int(config["heads"]),
        layers=int(config["layers"]),
        experts=int(config["experts"]),
        top_k=int(config["top_k"]),
        num_classes=num_classes(problem, n),
        pair_blocks=pair_blocks(n),
    )
    held_out = sample(np.random.default_rng(seed + HELD_OUT_SEED_OFFSET), int(config["eval_size"]))
    if target is None and config.get("target_accuracy") is not None:
        target = float(config["target_accuracy"])
    train_cfg = _train_config(config, target=target)
    curriculum = config.get("curriculum")  # over |V|, ramping over the first half
    default = "device" if config.get("device_sampler") and curriculum is None else "numpy"
    sampler = str(config.get("sampler", default))
    train_sample = training_sampler(
        problem,
        n,
        sampler,
        train_cfg,
        None if curriculum is None else int(curriculum),
        ramp=int(config["steps"]) // 2,
    )
    model = Transformer(model_cfg, torch.Generator().manual_seed(seed))
    summary = train(model, train_cfg, train_sample, held_out, scratch, progress=False)
    metrics = {
        "accuracy": summary["held_out_accuracy"],
        "best_accuracy": summary["best_accuracy"],
        "loss": summary["held_out_loss"],
        "total_params": summary["total_params"],
        "active_params": summary["active_params"],
        "steps": summary["steps"],
        "stopped_early": summary["stopped_early"],
        "resumed_from": summary["resumed_from"],
        "train_seconds": summary["seconds"],
        "device": summary["device"],
        "sampler": sampler,
        "cuda_graph": train_cfg.cuda_graph,
        "compile": train_cfg.compile,
    }
    if sampler == "device":  # must be 0: every batch met both class quotas
        metrics["sampler_shortfalls"] = train_sample.shortfalls()
    return metrics, _curve(scratch)


def length2(config: dict[str, Any], scratch: Path) -> tuple[dict[str, Any], Curve]:
    metrics, curve = _graph_once(config, int(config["width"]), scratch)
    metrics["width"] = int(config["width"])
    return metrics, curve


def graph(config: dict[str, Any], scratch: Path) -> tuple[dict[str, Any], Curve]:
    from theory.problems import check_problem

    if "problem" not in config:
        raise InputError("graph task: the config needs a 'problem' (connectivity, ...)")
    problem = check_problem(str(config["problem"]))
    metrics, curve = _graph_once(config, int(config["width"]), scratch, problem=problem)
    metrics["width"] = int(config["width"])
    return metrics, curve


def threshold(config: dict[str, Any], scratch: Path) -> tuple[dict[str, Any], Curve]:
    widths = [int(w) for w in config["widths"]]
    if widths != sorted(set(widths)):
        raise InputError(f"threshold: widths must increase, got {widths}")
    if int(config["experts"]) != 1:
        raise InputError("threshold: the width threshold is of the dense model (experts = 1)")
    target = float(config["target"])
    tried: dict[str, float] = {}
    curve: Curve = []
    found: int | None = None
    last: dict[str, Any] = {}
    for width in widths:
        last, curve = _graph_once(config, width, scratch / f"w{width}", target=target)
        tried[str(width)] = last["best_accuracy"]
        if last["best_accuracy"] >= target:
            found = width
            break
    return {
        "width_threshold": found,
        "target": target,
        "accuracy_by_width": tried,
        "max_width_tried": max(int(w) for w in tried),
        "total_params": last.get("total_params"),
        "device": last.get("device"),
    }, curve


def phonebook(config: dict[str, Any], scratch: Path) -> tuple[dict[str, Any], Curve]:
    import torch

    from constructions.memorizer import FIRST_NAME_TOKEN, phone_book
    from models.train import train
    from models.transformer import ModelConfig, Transformer

    seed, bits = int(config["seed"]), int(config["value_bits"])
    book = phone_book(np.random.default_rng(seed), int(config["entries"]), bits)
    tokens, values = book.tokens().astype(np.int64), book.values.astype(np.int64)
    model_cfg = ModelConfig(
        vocab_size=FIRST_NAME_TOKEN + book.n_first * book.n_last,
        max_len=1,
        width=int(config["width"]),
        heads=1,
        layers=1,
        mlp_hidden=int(config["mlp_hidden"]),
        experts=int(config["experts"]),
        top_k=int(config["top_k"]),
        num_classes=2**bits,
        pair_blocks=((FIRST_NAME_TOKEN, book.n_first, book.n_last),),
    )

    def sample(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, len(tokens), size=batch)
        return tokens[idx], values[idx]

    model = Transformer(model_cfg, torch.Generator().manual_seed(seed))
    summary = train(model, _train_config(config), sample, (tokens, values), scratch, progress=False)
    recall = summary["held_out_accuracy"]
    memorized = round(recall * len(tokens))
    stored_bits = memorized * bits  # each number is uniform on 2^bits values
    total, active = summary["total_params"], summary["active_params"]
    metrics = {
        "recall": recall,
        "best_recall": summary["best_accuracy"],
        "entries_memorized": memorized,
        "bits_stored": stored_bits,
        "bits_per_total_param": stored_bits / total,
        "bits_per_active_param": stored_bits / active,
        "total_params": total,
        "active_params": active,
        "steps": summary["steps"],
        "resumed_from": summary["resumed_from"],
        "train_seconds": summary["seconds"],
        "device": summary["device"],
        "cuda_graph": bool(config.get("cuda_graph", False)),
        "compile": bool(config.get("compile", False)),
    }
    return metrics, _curve(scratch)


def selftest(config: dict[str, Any], scratch: Path) -> tuple[dict[str, Any], Curve]:
    began = time.time()
    time.sleep(float(config.get("sleep", 0.0)))
    if config.get("die"):  # as an OOM kill would: the process ends, no exception, no row
        os.kill(os.getpid(), signal.SIGKILL)
    if config.get("fail"):
        raise RuntimeError(f"selftest run {config.get('value')!r} fails on purpose")
    value = float(config.get("value", 0))
    metrics = {"value": value, "square": value * value, "root": math.sqrt(abs(value))}
    # where and when it ran, for the runner's tests of runs at once
    metrics.update(pid=os.getpid(), began=began, ended=time.time())
    options = {name: bool(config.get(name, False)) for name in ("cuda_graph", "compile")}
    return {**metrics, **options}, []


TASKS: dict[str, Task] = {
    "length2": length2,
    "graph": graph,
    "phonebook": phonebook,
    "threshold": threshold,
    "selftest": selftest,
}
