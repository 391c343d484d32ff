"""``parrots verify``: run hand-built constructions through the real forward pass and check
them against the exact solvers."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from experiments.results import append_row, provenance
from theory.errors import InputError

DTYPES = ("float64", "float32", "bfloat16", "float16")  # torch dtypes of these names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check hand-built constructions against the exact solvers",
        description="Run a construction through models.Transformer's forward pass and compare "
        "every answer with the exact solver.",
    )
    inner = p.add_subparsers(dest="construction", required=True, metavar="CONSTRUCTION")
    q = inner.add_parser(
        "length2",
        help="the one-layer dense length-2 path solver",
        description="Exhaustive check on every graph and ordered query for 3 <= n <= "
        "--max-vertices; with --precision, the precision study instead.",
    )
    q.add_argument("--max-vertices", type=int, default=6, help="largest n checked exhaustively")
    q.add_argument("--precision", action="store_true", help="run the precision study")
    q.add_argument("--dtypes", default="float64,float32,bfloat16,float16")
    q.add_argument("--sizes", default="4,8,12,16,24,32,48,64", help="n values to try")
    q.add_argument("--samples", type=int, default=1000, help="balanced instances per n")
    q.add_argument(
        "--scales",
        default="1,0.9,0.8,0.7,0.6,0.5,0.4,0.3,0.2,0.1",
        help="sharpness multiples of the provable β* to try",
    )
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--save", metavar="FILE", help="append the result row to FILE")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_length2)
    r = inner.add_parser(
        "memorizer",
        help="the one-layer MoE phone-book memorizer",
        description="Build the memorizer for a random phone book of --facts entries with each "
        "K in --experts, and check exact recall of every entry through the forward pass.",
    )
    r.add_argument("--facts", type=int, default=4096, help="N, the phone book's size")
    r.add_argument("--experts", default="16", help="K, or a comma-separated list (powers of 2)")
    r.add_argument("--value-bits", type=int, default=8, help="numbers lie in [0, 2^bits)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--save", metavar="FILE", help="append the result row to FILE")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=run_memorizer)


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise InputError(f"--{name} must be comma-separated integers, got {text!r}") from err
    if not values or min(values) < 3:
        raise InputError(f"--{name} needs integers >= 3, got {text!r}")
    return values


def _exhaustive(args: argparse.Namespace) -> dict[str, Any]:
    from constructions.length2 import build_length2, exhaustive_errors

    if args.max_vertices < 3 or args.max_vertices > 7:
        raise InputError(f"--max-vertices must be in [3, 7], got {args.max_vertices}")
    rows = []
    for n in range(3, args.max_vertices + 1):
        start = time.perf_counter()
        model, record = build_length2(n)
        checked, errors, first = exhaustive_errors(model, n)
        row: dict[str, Any] = {
            "vertices": n,
            "checked": checked,
            "errors": errors,
            "width": record.width,
            "heads": record.heads,
            "mlp_hidden": record.mlp_hidden,
            "total_params": record.total_params,
            "sharpness": round(record.sharpness, 3),
            "seconds": round(time.perf_counter() - start, 2),
        }
        if first is not None:
            row["first_error"] = {
                "edges": first.graphs.edge_lists()[0],
                "s": int(first.s[0]),
                "t": int(first.t[0]),
            }
        rows.append(row)
        if not args.json:
            print(
                f"n={n}: {checked} instances, {errors} errors, width {record.width}, "
                f"{record.heads} heads, {row['seconds']} s",
                flush=True,
            )
    return {"construction": "length2", "check": "exhaustive", "float": "float64", "rows": rows}


def _precision(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from constructions.length2 import precision_errors, precision_sample, provable_sharpness

    names = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = [d for d in names if d not in DTYPES]
    if unknown:
        raise InputError(f"unknown dtype {unknown[0]!r}; choose from {', '.join(DTYPES)}")
    sizes = _ints(args.sizes, "sizes")
    try:
        scales = sorted({float(s) for s in args.scales.split(",")}, reverse=True)
    except ValueError as err:
        raise InputError(f"--scales must be comma-separated numbers, got {args.scales!r}") from err
    rows = []
    with tqdm(total=len(sizes) * len(names), desc="precision", disable=args.json) as bar:
        for n in sizes:
            inst = precision_sample(n, args.samples, np.random.default_rng([args.seed, n]))
            for name in names:
                errors_at: dict[str, int] = {}
                for scale in scales:  # from the provable sharpness down, until it breaks
                    errors = precision_errors(n, getattr(torch, name), inst, scale)
                    errors_at[str(scale)] = errors
                    if errors:
                        break
                exact_scales = [float(s) for s, e in errors_at.items() if e == 0]
                rows.append(
                    {
                        "vertices": n,
                        "dtype": name,
                        "instances": len(inst),
                        "exact_at_provable_sharpness": errors_at[str(scales[0])] == 0,
                        "errors_at_provable_sharpness": errors_at[str(scales[0])],
                        "provable_sharpness": round(provable_sharpness(n), 2),
                        "smallest_exact_scale": min(exact_scales) if exact_scales else None,
                        "errors_by_scale": errors_at,
                    }
                )
                bar.update()
    summary = {}
    for name in names:
        mine = sorted(
            (r["vertices"], r["exact_at_provable_sharpness"]) for r in rows if r["dtype"] == name
        )
        failures = [n for n, exact in mine if not exact]
        below = [n for n, exact in mine if exact and (not failures or n < failures[0])]
        summary[name] = {
            "largest_exact_n_before_first_failure": max(below) if below else None,
            "failing_n": failures,
        }
    return {"construction": "length2", "check": "precision", "summary": summary, "rows": rows}


def run_length2(args: argparse.Namespace) -> int:
    result = _precision(args) if args.precision else _exhaustive(args)
    if args.json:
        print(json.dumps(result))
    elif args.precision:
        print("dtype     n   exact  smallest exact β/β*")
        for r in result["rows"]:
            print(
                f"{r['dtype']:9s} {r['vertices']:3d}  {r['exact_at_provable_sharpness']!s:5s}  "
                f"{r['smallest_exact_scale']}"
            )
    if args.save:
        append_row(args.save, {**result, "provenance": provenance()})
    failed = any(r.get("errors") for r in result["rows"])
    return 1 if failed else 0


def run_memorizer(args: argparse.Namespace) -> int:
    from constructions.memorizer import build_moe_memorizer, phone_book, recall
    from theory.bounds import memorization_min_params

    try:
        experts = [int(k) for k in str(args.experts).split(",")]
    except ValueError as err:
        raise InputError(f"--experts must be integers, got {args.experts!r}") from err
    if not 1 <= args.value_bits <= 16:
        raise InputError(f"--value-bits must be in [1, 16], got {args.value_bits}")
    book = phone_book(np.random.default_rng(args.seed), args.facts, args.value_bits)
    rows = []
    for k in experts:
        start = time.perf_counter()
        model, record = build_moe_memorizer(book, k)
        accuracy = recall(model, book)
        expert_params = record.total_params - record.active_params
        rows.append(
            {
                "facts": record.facts,
                "experts": k,
                "recall": accuracy,
                "width": record.width,
                "expert_hidden": record.expert_hidden,
                "total_params": record.total_params,
                "active_params": record.active_params,
                "inactive_expert_params": expert_params,
                "bits_stored": record.bits_stored,
                "bits_per_total_param": round(record.bits_per_total_param, 4),
                "bits_per_active_param": round(record.bits_per_active_param, 4),
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
        if not args.json:
            r = rows[-1]
            print(
                f"K={k:3d}: recall {accuracy:.4f} of {record.facts}, width {record.width}, "
                f"{record.expert_hidden} units/expert, total {record.total_params:,}, active "
                f"{record.active_params:,} params, {r['bits_per_total_param']} bits/total "
                f"param",
                flush=True,
            )
    result = {
        "construction": "memorizer",
        "facts": args.facts,
        "value_bits": args.value_bits,
        "counting_bound_params_at_32_bits": memorization_min_params(
            args.facts, 2**args.value_bits, 32
        ),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result))
    if args.save:
        append_row(args.save, {**result, "provenance": provenance()})
    return 0 if all(r["recall"] == 1.0 for r in rows) else 1
