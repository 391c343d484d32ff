"""experiments/host_malloc: freed memory kept in glibc's heap, the opt-out, and that the
setting changes how fast a CPU run is, never what it computes."""

from __future__ import annotations

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

# Allocates 64 MiB with malloc and prints how many more blocks glibc then holds as separate
# mmaps (mallinfo2().hblks): 1 with glibc's defaults (64 MiB is over any mmap threshold), 0
# once keep_freed_memory has set M_MMAP_MAX to 0.
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
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
print(json.dumps({"state": state, "hblks": libc.mallinfo2().hblks - before}))
"""


def probe(mode: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != host_malloc.ENV}
    if mode is not None:
        env[host_malloc.ENV] = mode
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="mallopt and mallinfo2 are glibc's")
def test_kept_serves_large_blocks_from_the_heap_and_system_leaves_malloc_alone() -> None:
    assert probe(None) == {"state": "kept", "hblks": 0}  # kept is the default
    assert probe("kept") == {"state": "kept", "hblks": 0}
    assert probe("system") == {"state": "system", "hblks": 1}


def test_the_first_answer_sticks_and_a_bad_value_is_an_input_error(monkeypatch) -> None:
    monkeypatch.setattr(host_malloc, "_state", None)
    monkeypatch.setenv(host_malloc.ENV, "system")
    assert host_malloc.keep_freed_memory() == "system"
    monkeypatch.setenv(host_malloc.ENV, "kept")
    assert host_malloc.keep_freed_memory() == "system"  # process-wide, decided once
    monkeypatch.setattr(host_malloc, "_state", None)
    monkeypatch.setenv(host_malloc.ENV, "jemalloc")
    with pytest.raises(InputError, match="PARROTS_MALLOC"):
        host_malloc.keep_freed_memory()


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
    assert result["processes_per_mode"] == 2
    assert result["same_weights"] is True
    assert result["system_over_kept"] > 0
