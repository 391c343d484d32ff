"""experiments/host_malloc: freed memory kept in glibc's heap, the opt-out, and that the
setting changes how fast a CPU run is, never what it computes."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys

import pytest

from experiments import host_malloc
from experiments.cli import main
from theory.errors import InputError

GLIBC = platform.libc_ver()[0] == "glibc"
MALLINFO2 = GLIBC and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")

# Allocates 64 MiB with malloc, frees it, and prints (mallinfo2) how many more blocks glibc
# held as separate mmaps meanwhile, and by how much the main heap grew and stayed. With glibc's
# defaults: 1 mmap (64 MiB is over any mmap threshold), no growth. Kept: no mmap (M_MMAP_MAX 0),
# and the heap keeps the 64 MiB after the free (M_TRIM_THRESHOLD; with the default it would
# be trimmed back).
PROBE = """
import ctypes, json, sys
from experiments.host_malloc import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
                .split()]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.mallinfo2.restype = Info
state = keep_freed_memory()
before = libc.mallinfo2()
block = libc.malloc(64 << 20)
during = libc.mallinfo2()
libc.free(ctypes.c_void_p(block))
after = libc.mallinfo2()
print(json.dumps({"state": state, "mmaps": during.hblks - before.hblks,
                  "kept_mib": (after.arena - before.arena) >> 20}))
"""


def probe(mode: str | None) -> dict:
    # glibc's own variables would tune the baseline too
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    env.pop(host_malloc.ENV, None)
    if mode is not None:
        env[host_malloc.ENV] = mode
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not MALLINFO2, reason="mallopt and mallinfo2 (glibc >= 2.33)")
def test_kept_serves_large_blocks_from_the_heap_and_keeps_them_system_leaves_malloc_alone():
    kept = probe(None)  # kept is the default
    assert kept["state"] == "kept" and kept["mmaps"] == 0 and kept["kept_mib"] >= 64
    assert probe("kept") == kept
    assert probe("system") == {"state": "system", "mmaps": 1, "kept_mib": 0}


def test_the_first_answer_sticks_and_a_bad_value_is_an_input_error(monkeypatch) -> None:
    monkeypatch.setattr(host_malloc, "_state", None)
    assert host_malloc.state() == "system"  # never applied in this process
    monkeypatch.setenv(host_malloc.ENV, "system")
    assert host_malloc.keep_freed_memory() == "system"
    monkeypatch.setenv(host_malloc.ENV, "kept")
    assert host_malloc.keep_freed_memory() == "system"  # process-wide, decided once
    monkeypatch.setattr(host_malloc, "_state", None)
    monkeypatch.setenv(host_malloc.ENV, "jemalloc")
    with pytest.raises(InputError, match="PARROTS_MALLOC"):
        host_malloc.keep_freed_memory()


def test_a_library_caller_of_run_sweep_is_left_alone_and_a_bad_value_refused(
    tmp_path, monkeypatch
) -> None:
    from experiments.runner import run_sweep
    from experiments.sweep import Grid, SweepConfig

    sweep = SweepConfig(
        name="selftest", scale="tiny", task="selftest", grids=(Grid("ok", axes={"value": [1]}),)
    )
    monkeypatch.setattr(host_malloc, "_state", None)
    report = run_sweep(sweep, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False)
    row = json.loads(report.path.read_text())
    assert row["provenance"]["malloc"] == "system"  # one worker: ran in this process
    assert host_malloc.state() == "system"
    monkeypatch.setenv(host_malloc.ENV, "fast")
    with pytest.raises(InputError, match="PARROTS_MALLOC"):
        run_sweep(sweep, results_dir=tmp_path / "2", scratch_dir=tmp_path / "s2", progress=False)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_a_sweep_worker_process_keeps_freed_memory(tmp_path, monkeypatch) -> None:
    from experiments.runner import run_sweep
    from experiments.sweep import Grid, SweepConfig

    sweep = SweepConfig(
        name="selftest", scale="tiny", task="selftest", grids=(Grid("ok", axes={"value": [1, 2]}),)
    )
    monkeypatch.delenv(host_malloc.ENV, raising=False)
    report = run_sweep(
        sweep, workers=2, results_dir=tmp_path, scratch_dir=tmp_path / "s", progress=False
    )
    rows = [json.loads(line) for line in report.path.read_text().splitlines()]
    assert [r["provenance"]["malloc"] for r in rows] == ["kept", "kept"]


def test_a_bad_value_stops_the_sweep_command_before_any_run(monkeypatch, capsys) -> None:
    monkeypatch.setattr(host_malloc, "_state", None)
    monkeypatch.setenv(host_malloc.ENV, "fast")
    assert main(["sweep", "reasoning", "--scale", "tiny", "--list"]) == 2
    assert "PARROTS_MALLOC must be 'kept' or 'system'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_benchmark_trains_the_same_weights_in_both_modes(capsys) -> None:
    argv = ["bench", "host_malloc", "--vertices", "8", "--width", "16", "--batch", "64"]
    argv += ["--steps", "4", "--eval-size", "64", "--repeats", "1", "--concurrent", "2", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["system"]["malloc"] == ["system"] and result["kept"]["malloc"] == ["kept"]
    assert result["kept"]["max_rss_mib"] > 0
    assert result["processes_per_mode"] == 2
    assert result["same_weights"] is True
    assert result["system_over_kept"] > 0
