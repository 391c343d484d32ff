"""``parrots lads``: LADS and its baselines on the constructed joint space or real features.

    parrots lads --synthetic [--rho DEG] [--seeds 5] [--bias] [--interaction K] [--json]
    parrots lads --features FILE.npz [--seeds 5] [--json]
    parrots lads --synthetic --sweep [--rhos 0 15 ... 90] [--seeds 5] [--out FILE.jsonl]
    parrots lads --encode MANIFEST.json --model ViT-L-14 --checkpoint PATH --out FILE.npz

The table reports mean ± sample std over seeds. The sweep appends one result row per
(ρ, seed) to ``experiments/results/lads/`` (``rho_sweep.jsonl``, or ``bias_sweep.jsonl`` with
``--bias``), which the ``fig_lads`` figure reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from theory.errors import InputError

RESULTS = Path(__file__).resolve().parents[1] / "results" / "lads"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lads",
        help="LADS (arXiv 2210.09520) and baselines on synthetic or precomputed embeddings",
        description="Train LADS augmenters and every baseline; print accuracies by domain "
        "(mean ± std over seeds). The synthetic space is constructed, not CLIP.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", action="store_true", help="the constructed joint space")
    src.add_argument("--features", metavar="FILE", help="precomputed .npz/.safetensors features")
    src.add_argument("--encode", metavar="MANIFEST", help="encode images with open_clip")
    p.add_argument("--rho", type=float, default=0.0, help="alignment angle ρ in degrees [0, 90]")
    p.add_argument("--bias", action="store_true", help="the Waterbirds-like bias variant")
    p.add_argument(
        "--interaction", type=float, default=None, help="class × domain interaction κ (0.6)"
    )
    p.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N−1)")
    p.add_argument("--alpha", type=float, nargs="+", default=None, help="α values (0 0.5 1)")
    p.add_argument("--sweep", action="store_true", help="sweep ρ and append result rows")
    p.add_argument("--rhos", type=float, nargs="+", default=None, help="ρ values of the sweep")
    p.add_argument("--out", default=None, help="sweep results file / encoded features file")
    p.add_argument("--model", default="ViT-L-14", help="open_clip model name (--encode)")
    p.add_argument("--checkpoint", default=None, help="local open_clip checkpoint (--encode)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _space_config(args: argparse.Namespace, rho: float):
    from constructions.joint_space import JointSpaceConfig

    extra = {} if args.interaction is None else {"interaction": args.interaction}
    if args.bias:
        return JointSpaceConfig(rho_deg=rho, bias=True, n_classes=2, n_domains=2, **extra)
    return JointSpaceConfig(rho_deg=rho, **extra)


def _format(summary: dict[str, Any], bias: bool) -> str:
    cols = ("mean_group", "worst_group", "extended") if bias else (
        "train_domain", "unseen", "extended", "worst_domain"
    )  # fmt: skip
    diag = ("domain_shift", "nn_domain", "nn_class")
    lines = [f"{'method':32s}" + "".join(f"{c:>16s}" for c in cols + diag)]
    for name, m in summary.items():
        cells = []
        for c in cols + diag:
            cells.append(f"{m[c]['mean']:.3f} ± {m[c]['std']:.3f}" if c in m else "")
        lines.append(f"{name:32s}" + "".join(f"{c:>16s}" for c in cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from experiments import lads
    from experiments.results import append_row, provenance

    torch.set_num_threads(1)  # the networks are tiny; leave the other cores alone
    if args.encode:
        from experiments.lads_data import encode_with_open_clip

        if not args.checkpoint or not args.out:
            raise InputError("--encode needs --checkpoint PATH and --out FILE")
        out = encode_with_open_clip(args.encode, args.model, args.checkpoint, args.out)
        print(f"wrote {out}")
        return 0
    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    cfg = lads.LadsRunConfig()
    if args.alpha is not None:
        cfg = replace(cfg, alphas=tuple(args.alpha))
    seeds = range(args.seeds)
    bar = dict(disable=args.json, leave=False)

    if args.sweep:
        if not args.synthetic:
            raise InputError("--sweep needs --synthetic")
        rhos = tuple(args.rhos) if args.rhos else lads.DEFAULT_RHOS
        name = "bias_sweep" if args.bias else "rho_sweep"
        out = Path(args.out) if args.out else RESULTS / f"{name}.jsonl"
        start = time.perf_counter()

        def on_row(row: dict[str, Any]) -> None:
            ident = hashlib.sha256(json.dumps(row["config"], sort_keys=True).encode()).hexdigest()
            full = {"sweep": f"lads_{name}", "run_id": ident[:16], "status": "ok", "error": None}
            append_row(out, {**full, **row, "provenance": provenance("cpu")})

        space = _space_config(args, 0.0)
        lads.rho_sweep(
            space, cfg, rhos, seeds, on_row, lambda it: tqdm(list(it), desc="lads sweep", **bar)
        )
        took = time.perf_counter() - start
        msg = {"rows": len(rhos) * len(seeds), "out": str(out), "seconds": round(took, 1)}
        print(
            json.dumps(msg) if args.json else f"appended {msg['rows']} rows to {out} ({took:.0f} s)"
        )
        return 0

    start = time.perf_counter()
    per_seed = []
    if args.synthetic:
        space = _space_config(args, args.rho)
        for seed in tqdm(seeds, desc="lads seeds", **bar):
            per_seed.append(lads.synthetic_run(space, replace(cfg, seed=seed)))
        config: dict[str, Any] = {"space": asdict(space), "run": cfg.to_dict()}
        bias = args.bias
    else:
        from experiments.lads_data import load_features

        task, meta = load_features(args.features)
        for seed in tqdm(seeds, desc="lads seeds", **bar):
            per_seed.append(lads.run_methods(task, replace(cfg, seed=seed)))
        config = {"features": str(args.features), "meta": meta, "run": cfg.to_dict()}
        bias = task.bias
    summary = lads.summarise(per_seed)
    took = time.perf_counter() - start
    if args.json:
        print(json.dumps({"config": config, "seconds": round(took, 1), "summary": summary}))
    else:
        what = (
            f"constructed joint space (not CLIP), rho = {args.rho:g}°"
            + (", bias variant" if bias else "")
            if args.synthetic
            else str(args.features)
        )
        print(f"LADS on {what}; {args.seeds} seeds, mean ± std; {took:.0f} s")
        print(_format(summary, bias))
    return 0
