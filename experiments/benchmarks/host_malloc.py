"""CPU training with glibc's default malloc against freed memory kept (experiments/host_malloc).

Each trial trains the same model for ``--steps`` steps in fresh processes (``parrots train``,
seed 0), once with ``PARROTS_MALLOC=system`` and once with the default ``kept``, alternating
(system then kept, kept then system, ...) so machine noise and drift hit both alike;
``--concurrent N`` runs N identical processes at once in each trial, as a sweep with N
workers does. The children get no ``MALLOC_*`` or ``GLIBC_TUNABLES`` variables, so the
``system`` baseline is glibc's own default. Reported per mode, as medians: the trainer's own
seconds (training and evaluation), the user and kernel CPU seconds of ``parrots train`` once
Python and torch are imported (model building included), and the peak resident size of the
process in MiB; then ``system_over_kept``, the speed-up. ``same_weights`` says whether every
process ended with bit-identical weights, which the setting must not change. Linux: on other
systems both modes are the system's malloc.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from theory.errors import InputError

MODES = ("system", "kept")
_CONFIG_KEYS = (
    "task",
    "vertices",
    "layers",
    "width",
    "experts",
    "batch",
    "steps",
    "eval_size",
    "repeats",
    "concurrent",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="length2")
    p.add_argument("--vertices", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--experts", type=int, default=1)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eval-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=2, help="trials per mode")
    p.add_argument("--concurrent", type=int, default=1, help="processes at once per trial")


def _train_argv(args: argparse.Namespace, out: Path) -> list[str]:
    return [
        "train",
        *("--task", args.task, "--vertices", str(args.vertices), "--layers", str(args.layers)),
        *("--width", str(args.width), "--experts", str(args.experts), "--heads", "2"),
        *("--batch", str(args.batch), "--steps", str(args.steps), "--lr", "1e-3"),
        *("--eval-interval", str(args.steps), "--eval-size", str(args.eval_size)),
        *("--threads", "1", "--device", "cpu", "--seed", "0", "--no-resume", "--json"),
        *("--out", str(out)),
    ]


def child(argv: list[str]) -> dict[str, Any]:
    """In the measured process: run ``parrots train ARGV``; return its timings and weights."""
    import contextlib
    import io
    import resource

    from safetensors.torch import load_file

    from experiments.cli import main
    from experiments.host_malloc import keep_freed_memory

    before = resource.getrusage(resource.RUSAGE_SELF)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    after = resource.getrusage(resource.RUSAGE_SELF)
    if code != 0:
        raise RuntimeError(f"parrots {' '.join(argv)} exited with {code}")
    summary = json.loads(printed.getvalue().strip().splitlines()[-1])
    weights = load_file(str(Path(argv[argv.index("--out") + 1]) / "checkpoint.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(weights):
        digest.update(name.encode() + weights[name].numpy().tobytes())
    return {
        "malloc": keep_freed_memory(),
        "seconds": summary["seconds"],
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "max_rss_mib": after.ru_maxrss / 1024,  # Linux reports KiB
        "weights_sha256": digest.hexdigest(),
    }


def _trial(args: argparse.Namespace, mode: str, scratch: Path) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    env["PARROTS_MALLOC"] = mode
    procs: list[subprocess.Popen[str]] = []
    try:
        for i in range(args.concurrent):
            argv = _train_argv(args, scratch / f"{mode}-{i}")
            cmd = [sys.executable, "-m", __name__, json.dumps(argv)]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
        results = []
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"a {mode} trial exited with {proc.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:  # on an error, no process is left training into a deleted folder
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.repeats < 1 or args.concurrent < 1 or args.steps < 1:
        raise InputError("--repeats, --concurrent and --steps must be positive")
    trials: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="parrots-malloc-") as tmp:
        for r in range(args.repeats):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                trials[mode] += _trial(args, mode, Path(tmp) / str(r))

    def med(mode: str, key: str) -> float:
        return round(statistics.median(t[key] for t in trials[mode]), 3)

    modes: dict[str, dict[str, Any]] = {
        mode: {
            "malloc": sorted({t["malloc"] for t in trials[mode]}),
            **{k: med(mode, k) for k in ("seconds", "user_s", "sys_s", "max_rss_mib")},
        }
        for mode in MODES
    }
    hashes = {t["weights_sha256"] for ts in trials.values() for t in ts}
    return {
        "config": {k: v for k, v in vars(args).items() if k in _CONFIG_KEYS},
        "processes_per_mode": args.repeats * args.concurrent,
        **modes,
        "system_over_kept": round(modes["system"]["seconds"] / modes["kept"]["seconds"], 3),
        "same_weights": len(hashes) == 1,
    }


if __name__ == "__main__":  # the measured process of a trial
    print(json.dumps(child(json.loads(sys.argv[1]))))
