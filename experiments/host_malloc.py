"""Keep memory a training step frees in glibc's heap, instead of handing it back to the kernel.

Why: a CPU training step of a paper-scale model (batch 1,024, |V| = 32) allocates activations
and gradients of tens to hundreds of MB each. glibc serves every block above its mmap threshold
(dynamic, at most 32 MiB on 64-bit) with a fresh ``mmap`` and ``munmap``\\ s it on ``free``, so
each step page-faults the same few hundred MB back in and the kernel zeroes them again. On the
2-core development machine that kernel time was nearly half a run's CPU time (``parrots bench
host_malloc`` measures it). Two ``mallopt`` settings stop the round trip:

* ``M_MMAP_MAX = 0``: large blocks come from the heap, not from ``mmap``;
* ``M_TRIM_THRESHOLD = 2^31 - 1`` (the largest ``int``): free memory at the top of the heap
  is kept, not trimmed.

The next step then reuses the pages the last one freed. Nothing computed changes (the weights
after training agree bit for bit, tested); the price is a higher resident size (the heap keeps
its high-water mark, plus fragmentation), about 1.9x on these runs. Only the main arena is
affected in practice: a block too big for a thread's 64 MiB arena is still mmapped, so runs on
threads (``--runs-per-worker``) gain less.

It is process-wide, so only code that owns its process applies it: ``parrots train``,
``parrots sweep`` (whose one-worker runs are in-process) and the sweep's worker processes and
cluster jobs (:func:`experiments.runner.execute_run_in_worker`). A library caller's process is
left alone. ``PARROTS_MALLOC=system`` leaves malloc alone everywhere (the benchmark's
baseline); on a C library other than glibc nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import platform

from theory.errors import InputError

ENV = "PARROTS_MALLOC"
CHOICES = ("kept", "system")
M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
M_MMAP_MAX = -4
KEEP_ALL = 2**31 - 1  # mallopt takes a C int

_state: str | None = None  # what keep_freed_memory did in this process


def choice() -> str:
    """What ``PARROTS_MALLOC`` asks for: ``"kept"`` (the default) or ``"system"``."""
    value = os.environ.get(ENV, "kept")
    if value not in CHOICES:
        raise InputError(f"{ENV} must be 'kept' or 'system', got {value!r}")
    return value


def keep_freed_memory() -> str:
    """Apply the settings above to this process (once) and return :func:`state`."""
    global _state
    if _state is None:
        if choice() == "system":
            _state = "system"
        elif platform.libc_ver()[0] != "glibc":
            _state = "unsupported"
        else:
            libc = ctypes.CDLL("libc.so.6")
            # mallopt returns 1 on success, 0 for a value it refuses
            done = libc.mallopt(M_MMAP_MAX, 0) + libc.mallopt(M_TRIM_THRESHOLD, KEEP_ALL)
            _state = "kept" if done == 2 else "refused"
    return _state


def state() -> str:
    """What this process's malloc does: ``"kept"``; ``"system"`` (asked for, or never
    applied here); ``"unsupported"`` (not glibc); ``"refused"`` (glibc said no)."""
    return _state or "system"
