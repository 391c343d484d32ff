"""``parrots train``: train a dense or MoE transformer on a graph task, print a JSON summary.

The data are the foundation's: ``theory.generators.balanced`` draws a fresh balanced batch
every step (exactly half positive, every graph with the same edge count M), encoded by
``theory.encoding.encode`` at the fixed length 2 + 2M (undirected), so no PAD is needed and
the edge count says nothing about the label. The held-out set is drawn from a separate seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from theory.encoding import encode, pair_blocks, vocab_size
from theory.errors import InputError
from theory.generators import balanced, balanced_num_edges
from theory.graphs import GraphBatch, pack_bits
from theory.problems import PROBLEMS, Instances, num_classes

HELD_OUT_SEED_OFFSET = 1_000_003


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a dense/MoE transformer on a graph task",
        description="Train models.Transformer on balanced instances of TASK with the trainer "
        "of models/train.py; prints progress, then a JSON summary.",
    )
    p.add_argument("--task", default="length2", help=f"one of {', '.join(PROBLEMS)}")
    p.add_argument("--vertices", type=int, required=True, help="|V|")
    p.add_argument("--directed", action="store_true")
    g = p.add_argument_group("model")
    g.add_argument("--width", type=int, default=64)
    g.add_argument("--layers", type=int, default=2)
    g.add_argument("--heads", type=int, default=4)
    g.add_argument("--mlp-hidden", type=int, default=None, help="default 4·width")
    g.add_argument("--experts", type=int, default=1, help="K; 1 = dense")
    g.add_argument("--top-k", type=int, default=1)
    g.add_argument("--renormalize", action="store_true", help="renormalise top-k weights")
    g.add_argument("--capacity-factor", type=float, default=None, help="default: dropless")
    g.add_argument("--dispatch", default="grouped", choices=("grouped", "loop"))
    g.add_argument("--norm", default="layer", choices=("none", "layer", "rms"))
    g.add_argument("--activation", default="gelu", choices=("relu", "gelu"))
    g.add_argument("--no-bias", action="store_true")
    g.add_argument("--pos-emb", default="none", choices=("none", "learned", "sinusoidal"))
    g.add_argument("--causal", action="store_true")
    g.add_argument(
        "--embedding",
        default="factorized",
        choices=("factorized", "token"),
        help="factorized: edge u->v = E_src[u] + E_dst[v] (default); token: one row per token id",
    )
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--min-lr-ratio", type=float, default=0.1)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--grad-clip", type=float, default=1.0)
    t.add_argument("--balance-weight", type=float, default=0.01)
    t.add_argument("--z-weight", type=float, default=1e-3)
    t.add_argument("--eval-interval", type=int, default=250)
    t.add_argument("--eval-size", type=int, default=4096)
    t.add_argument("--target-accuracy", type=float, default=None)
    t.add_argument(
        "--sampler",
        default="numpy",
        choices=("numpy", "device"),
        help="device: draw the same balanced distribution with torch on the training device "
        "(experiments/device_sampler.py; for GPUs, where numpy sampling costs more than a step)",
    )
    t.add_argument(
        "--curriculum",
        type=int,
        default=None,
        metavar="START",
        help="curriculum over |V|: start at START vertices, reach --vertices "
        "after --curriculum-steps",
    )
    t.add_argument(
        "--curriculum-steps",
        type=int,
        default=None,
        help="length of the ramp (default: half of --steps)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    t.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay forward and backward as CUDA graphs (GPU only; models/train.py)",
    )
    t.add_argument(
        "--compile",
        action="store_true",
        help="compile the forward with torch.compile (an MoE on a GPU only; models/train.py)",
    )
    t.add_argument(
        "--guard-interval",
        type=int,
        default=1,
        metavar="N",
        help="steps between the NaN/PAD guard's reads from the device (models/train.py)",
    )
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=None, help="run folder: metrics, checkpoint, config")
    o.add_argument("--no-resume", action="store_true", help="ignore a checkpoint in --out")
    o.add_argument(
        "--results",
        default=None,
        help="append a result row (config, metrics, provenance) to this .jsonl",
    )
    o.add_argument("--no-progress", action="store_true")
    o.add_argument("--json", action="store_true", help="print only the JSON summary")
    p.set_defaults(func=run)


def _length(problem: str, n: int, directed: bool) -> int:
    edges = balanced_num_edges(problem, n, directed)
    return 2 + (edges if directed else 2 * edges)


def graph_task(problem: str, n: int, directed: bool = False):
    """(sample(rng, batch) -> (tokens, labels), sequence length) for balanced instances."""
    length = _length(problem, n, directed)

    def sample(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        inst = balanced(problem, rng, n, batch, directed)
        return encode(inst, length), inst.labels()

    return sample, length


def training_sampler(
    problem: str,
    n: int,
    sampler: str,
    train_cfg: Any,
    curriculum: int | None = None,
    ramp: int = 1,
    directed: bool = False,
) -> Any:
    """The training batches of ``parrots train`` and the sweep tasks: numpy's ``graph_task``,
    a :class:`Curriculum` over |V| from ``curriculum`` vertices (numpy), or the same law drawn
    by torch on the training device (``sampler="device"``)."""
    if sampler not in ("numpy", "device"):
        raise InputError(f"sampler must be 'numpy' or 'device', got {sampler!r}")
    if curriculum is not None:
        if sampler == "device":
            raise InputError("the curriculum draws with numpy; use the numpy sampler with it")
        return Curriculum(problem, n, curriculum, ramp, directed)
    if sampler == "device":
        from experiments.device_sampler import DeviceSampler

        device = train_cfg.resolved_device()
        return DeviceSampler(problem, n, device, directed, train_cfg.batch_size)
    return graph_task(problem, n, directed)[0]


class Curriculum:
    """Curriculum over |V|: at step s the graphs have n_s vertices, n_s rising linearly from
    ``start`` to n over the first ``ramp`` steps, then n. A graph on n_s < n vertices is a
    balanced instance on n_s vertices whose vertices get distinct random labels in 0..n-1
    (the others isolated), encoded with n's vocabulary and left-padded to n's length, so one
    model sees every stage. The trainer calls ``set_step`` before each draw."""

    def __init__(self, problem: str, n: int, start: int, ramp: int, directed: bool = False):
        if not 3 <= start <= n:
            raise InputError(f"--curriculum start must be in [3, {n}], got {start}")
        self.problem, self.n, self.start, self.ramp, self.directed = (
            problem,
            n,
            start,
            max(1, ramp),
            directed,
        )
        self.length = _length(problem, n, directed)
        self.step = 0

    def set_step(self, step: int) -> None:
        self.step = step

    def vertices(self) -> int:
        frac = min(1.0, self.step / self.ramp)
        return self.start + round((self.n - self.start) * frac)

    def __call__(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        k, n = self.vertices(), self.n
        inst = balanced(self.problem, rng, k, batch, self.directed)
        if k < n:
            labels = np.argsort(rng.random((batch, n)), axis=1)[:, :k]  # injective relabelling
            big = np.zeros((batch, n, n), dtype=bool)
            rows = np.arange(batch)[:, None, None]
            big[rows, labels[:, :, None], labels[:, None, :]] = inst.graphs.dense()
            b = np.arange(batch)
            inst = Instances(
                self.problem,
                GraphBatch(n, pack_bits(big), self.directed),
                labels[b, inst.s],
                labels[b, inst.t],
            )
        return encode(inst, self.length), inst.labels()


def build_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    from models.train import TrainConfig
    from models.transformer import ModelConfig

    n = args.vertices
    if not isinstance(n, int) or n < 3:
        raise InputError(f"--vertices must be at least 3, got {n}")
    _, length = graph_task(args.task, n, args.directed)
    model_cfg = ModelConfig(
        vocab_size=vocab_size(n),
        max_len=length,
        width=args.width,
        heads=args.heads,
        layers=args.layers,
        mlp_hidden=args.mlp_hidden,
        experts=args.experts,
        top_k=args.top_k,
        norm=args.norm,
        activation=args.activation,
        bias=not args.no_bias,
        pos_emb=args.pos_emb,
        causal=args.causal,
        head="classify",
        num_classes=num_classes(args.task, n),
        pair_blocks=pair_blocks(n) if args.embedding == "factorized" else (),
        renormalize=args.renormalize,
        capacity_factor=args.capacity_factor,
        dispatch=args.dispatch,
    )
    train_cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        warmup_steps=args.warmup,
        min_lr_ratio=args.min_lr_ratio,
        weight_decay=args.weight_decay,
        grad_clip=args.grad_clip if args.grad_clip > 0 else None,
        balance_weight=args.balance_weight,
        z_weight=args.z_weight,
        eval_interval=args.eval_interval,
        target_accuracy=args.target_accuracy,
        seed=args.seed,
        device=args.device,
        cuda_graph=args.cuda_graph,
        compile=args.compile,
        guard_interval=args.guard_interval,
    )
    return model_cfg, train_cfg


def run(args: argparse.Namespace) -> int:
    import torch

    from experiments import host_malloc
    from experiments.results import append_row, provenance
    from models.train import TrainingDiverged, train
    from models.transformer import Transformer

    host_malloc.keep_freed_memory()  # this command owns its process (experiments/host_malloc)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.eval_size < 1:
        raise InputError(f"--eval-size must be positive, got {args.eval_size}")
    model_cfg, train_cfg = build_configs(args)
    sample, _ = graph_task(args.task, args.vertices, args.directed)
    ramp = args.curriculum_steps if args.curriculum_steps is not None else args.steps // 2
    train_sample = training_sampler(
        args.task, args.vertices, args.sampler, train_cfg, args.curriculum, ramp, args.directed
    )
    held_out = sample(np.random.default_rng(args.seed + HELD_OUT_SEED_OFFSET), args.eval_size)
    model = Transformer(model_cfg, torch.Generator().manual_seed(args.seed))
    try:
        summary = train(
            model,
            train_cfg,
            train_sample,
            held_out,
            out_dir=args.out,
            progress=not (args.no_progress or args.json),
            resume=not args.no_resume,
        )
    except TrainingDiverged as err:
        raise InputError(str(err)) from err
    summary = {
        "task": args.task,
        "vertices": args.vertices,
        "layers": args.layers,
        "width": args.width,
        "heads": args.heads,
        "experts": args.experts,
        "top_k": args.top_k,
        "embedding": args.embedding,
        "sampler": args.sampler,
        **summary,
    }
    if args.results:
        config = {
            "model": model_cfg.to_dict(),
            "train": train_cfg.to_dict(),
            "task": args.task,
            "vertices": args.vertices,
            "eval_size": args.eval_size,
            "curriculum": args.curriculum,
            "curriculum_steps": args.curriculum_steps,
            **({"sampler": "device"} if args.sampler == "device" else {}),
        }
        run_id = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
        append_row(
            Path(args.results),
            {
                "sweep": Path(args.results).stem,
                "run_id": run_id,
                "status": "ok",
                "config": config,
                "metrics": summary,
                "error": None,
                "provenance": {**provenance(summary["device"]), "malloc": host_malloc.state()},
            },
        )
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0
