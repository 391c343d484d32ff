"""Keep memory a training step frees in glibc's heap, instead of handing it back to the kernel.

Why: a CPU training step of a paper-scale model (batch 1,024, |V| = 32) allocates activations
and gradients of tens to hundreds of MB each. glibc serves every block above its mmap threshold
(dynamic, at most 32 MiB on 64-bit) with a fresh ``mmap`` and ``munmap``\\ s it on ``free``, so
each step page-faults the same few hundred MB back in and the kernel zeroes them again. On the
2-core development machine that kernel time was ~40% of a run (``parrots bench host_malloc``
measures it). Two ``mallopt`` settings stop the round trip:

* ``M_MMAP_MAX = 0``: large blocks come from the heap, not from ``mmap``;
* ``M_TRIM_THRESHOLD = 2^31 - 1`` (the largest ``int``): free memory at the top of the heap
  is kept, not trimmed.

The next step then reuses the pages the last one freed. Nothing computed changes (the weights
after training agree bit for bit, tested); the price is a higher resident size (the heap keeps
its high-water mark, plus fragmentation), about 1.5-2x on these runs. It is process-wide, so
only entry points that own their process call it: a sweep's worker (:func:`experiments.
runner.execute_run`) and ``parrots train``. ``PARROTS_MALLOC=system`` leaves malloc alone
(the benchmark's baseline); on a C library other than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

from theory.errors import InputError

ENV = "PARROTS_MALLOC"
M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
M_MMAP_MAX = -4
KEEP_ALL = 2**31 - 1  # mallopt takes a C int

_state: str | None = None  # what the first call did, for provenance


def keep_freed_memory() -> str:
    """Apply the settings above once per process; return what this process's malloc does:

    ``"kept"`` (applied), ``"system"`` (``PARROTS_MALLOC=system``), or ``"unsupported"``
    (not glibc). Idempotent: later calls return the first call's answer."""
    global _state
    if _state is not None:
        return _state
    choice = os.environ.get(ENV, "kept")
    if choice not in ("kept", "system"):
        raise InputError(f"{ENV} must be 'kept' or 'system', got {choice!r}")
    if choice == "system":
        _state = "system"
    elif platform.libc_ver()[0] != "glibc":
        _state = "unsupported"
    else:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        # mallopt returns 1 on success, 0 on a value it refuses
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, KEEP_ALL) == 1
        _state = "kept" if ok else "unsupported"
    return _state
