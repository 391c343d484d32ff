"""``parrots probe``: find an input on which a narrow one-layer (MoE) model must be wrong."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.results import append_row, provenance
from theory import disjointness, encoding
from theory.errors import InputError

if TYPE_CHECKING:
    from models.transformer import Transformer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe",
        help="find a fooling pair for a narrow one-layer (MoE) model",
        description="Build one-layer models of the given width, heads and experts on the "
        "disjointness family with |V| vertices (n = |V| - 2 middle vertices), optionally "
        "train them, and search Alice's 2^n sets for two with equal p-bit messages: the "
        "resulting pair of graphs has different answers and the same p-bit model answer.",
    )
    p.add_argument("--vertices", type=int, default=16, help="|V| (n = |V| - 2, at most 22)")
    p.add_argument("--width", type=int, default=2, help="m")
    p.add_argument("--heads", type=int, default=1, help="H")
    p.add_argument("--bits", type=int, default=4, help="p, bits per message number")
    p.add_argument("--experts", default="16", help="K, or a comma-separated list of K")
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--train-steps", type=int, default=0, help="also train each model this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="FILE", help="append one result row per model to FILE")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.set_defaults(func=run)


def _model(args: argparse.Namespace, experts: int, n: int) -> Transformer:
    import torch

    from models.transformer import ModelConfig, Transformer

    cfg = ModelConfig(
        vocab_size=encoding.vocab_size(n),
        max_len=encoding.max_length(n),
        width=args.width,
        heads=args.heads,
        layers=1,
        experts=experts,
        top_k=min(args.top_k, experts),
        pair_blocks=encoding.pair_blocks(n),
    )
    return Transformer(cfg, torch.Generator().manual_seed(args.seed))


def _sampler(n_middle: int):
    def sample(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        inst = disjointness.sample(rng, n_middle, batch)
        return encoding.encode(inst), inst.labels()

    return sample


def run(args: argparse.Namespace) -> int:
    from constructions.moe_failure import find_fooling_pair, message_bits
    from models.train import TrainConfig, evaluate, train

    try:
        experts = [int(k) for k in str(args.experts).split(",")]
    except ValueError as err:
        raise InputError(f"--experts must be integers, got {args.experts!r}") from err
    if args.train_steps < 0:
        raise InputError(f"--train-steps must be >= 0, got {args.train_steps}")
    n_vertices = args.vertices
    n_middle = n_vertices - 2
    held = _sampler(n_middle)(np.random.default_rng([args.seed, 1]), 2048)
    for k in experts:
        for trained in [False, True] if args.train_steps else [False]:
            start = time.perf_counter()
            model = _model(args, k, n_vertices)
            if trained:
                cfg = TrainConfig(
                    steps=args.train_steps,
                    batch_size=256,
                    lr=3e-3,
                    warmup_steps=min(100, args.train_steps // 10),
                    eval_interval=max(1, args.train_steps),
                    seed=args.seed,
                    device="cpu",
                )
                train(model, cfg, _sampler(n_middle), held, progress=not args.json)
            model = model.cpu().float()
            pair = find_fooling_pair(model, n_middle, args.bits)
            row: dict[str, Any] = {
                "vertices": n_vertices,
                "middle_vertices": n_middle,
                "width": args.width,
                "heads": args.heads,
                "experts": k,
                "top_k": min(args.top_k, k),
                "bits": args.bits,
                "message_bits": message_bits(model, args.bits),
                "total_params": model.total_params(),
                "trained_steps": args.train_steps if trained else 0,
                "held_out_accuracy": evaluate(model, *held)["accuracy"],
                "fooling_pair_found": pair is not None,
                "pair": pair.to_dict() if pair is not None else None,
                "seconds": round(time.perf_counter() - start, 2),
            }
            if args.json:
                print(json.dumps(row))
            else:
                _print(row)
            if args.save:
                append_row(args.save, {**row, "provenance": provenance()})
    return 0


def _print(row: dict[str, Any]) -> None:
    state = f"trained {row['trained_steps']} steps" if row["trained_steps"] else "random init"
    print(
        f"K={row['experts']} ({state}, held-out accuracy {row['held_out_accuracy']:.3f}): "
        f"message {row['message_bits']} bits vs n = {row['middle_vertices']}: "
        f"fooling pair {'FOUND' if row['fooling_pair_found'] else 'not found'}"
    )
    pair = row["pair"]
    if pair:
        print(f"  a = {pair['alice_a']}, a' = {pair['alice_a_prime']}, b = {pair['bob_b']}")
        print(
            f"  true answers {pair['true_answers']}, p-bit model answers "
            f"{pair['model_answer_p_bits']} on both (float64 forward: "
            f"{pair['model_answers_float64']})"
        )
        print(f"  graph 1 edges: {pair['graph_1_edges']}")
        print(f"  graph 2 edges: {pair['graph_2_edges']}")
