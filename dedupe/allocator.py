"""A command's process set up for a scan's memory: freed blocks kept for reuse, no huge pages.

`tune_for_batches` does both; only the command-line tool calls it, for the process it owns: the
library never changes how its host allocates.

**Freed blocks.**

glibc's malloc serves a block above its mmap threshold (128 KiB at first) from a mapping of its
own and unmaps it when it is freed; the threshold then rises to the size of the block freed (up to
32 MiB), and memory at the top of the heap beyond twice the threshold goes back to the kernel. A
scan allocates and frees arrays of a few to tens of MiB batch after batch (each batch's packed
text, signatures, shingles and scratch arrays, then each stage's own), so blocks keep going back to
the kernel and the next ones are paged in afresh. On the KVM machines measured, paging in memory
not used before costs 0.6-2.3 s per GiB against 0.1 s for memory reused, and a single-process scan
of 100k synthetic documents spent about 4 s of its 30 in the kernel.

`reuse_freed_blocks` sets both thresholds from the start: blocks of up to 32 MiB come from the heap
and are reused when freed, and up to 64 MiB free at the heap's top is kept. The peak is the same
(the freed blocks are what the next batch takes); larger arrays are mapped and unmapped as before.
Where the C library is not glibc it does nothing.

**Huge pages.** numpy advises the kernel to back each array of 4 MiB or more with transparent huge
pages (where they are enabled "madvise", as on the machines measured). A scan writes most of its
arrays once, and the first write to each 2 MiB page faults it in whole. On those KVM machines that
cost more system time than the fewer page-table misses saved: a single-process scan of 100k
synthetic documents, three pairs of runs alternating, took 26.8-28.2 s with huge pages and
24.9-26.2 s without (system time 3.8-4.5 s and 2.1-2.4 s; user time the same). `small_pages_for_arrays`
turns numpy's advice off, unless the user set `NUMPY_MADVISE_HUGEPAGE` themselves.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable

import numpy as np

REUSED_BLOCK = 32 << 20  # glibc's ceiling of the dynamic mmap threshold (64-bit)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


def is_glibc() -> bool:
    """Whether this process's C library is glibc (whose `mallopt` takes these parameters)."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")  # type: ignore[union-attr]
    return False


def reuse_freed_blocks() -> bool:
    """Keep freed blocks of up to `REUSED_BLOCK` in the heap for reuse (see the module docstring);
    True when glibc took both settings. Forked workers inherit them."""
    if not is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, REUSED_BLOCK)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * REUSED_BLOCK))


def small_pages_for_arrays() -> bool:
    """Stop numpy advising huge pages for its large arrays (see the module docstring); True when it
    was turned off here. An explicit `NUMPY_MADVISE_HUGEPAGE` in the environment is left to rule."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    setter = _numpy_hugepage_setter()
    if setter is None:
        return False
    setter(False)
    return True


def tune_for_batches() -> None:
    """Both settings for the process a command owns: freed blocks reused, arrays on small pages."""
    reuse_freed_blocks()
    small_pages_for_arrays()


def _numpy_hugepage_setter() -> Callable[[bool], bool] | None:
    """numpy's switch of its huge-page advice (in `numpy._core` from numpy 2, `numpy.core` before)."""
    for module in ("_core", "core"):
        multiarray = getattr(getattr(np, module, None), "multiarray", None)
        setter = getattr(multiarray, "_set_madvise_hugepage", None)
        if setter is not None:
            return setter  # type: ignore[no-any-return]
    return None
