"""Keep freed memory in the process, so training does not zero-fill gigabytes of fresh pages every step.

glibc's ``malloc`` serves large blocks with ``mmap`` and hands them back to the kernel when they are
freed. PyTorch's CPU allocator frees every activation as soon as the backward pass is done with it,
so each training step maps its activations anew and the kernel zero-fills every page on first touch:
up to 620,000 page faults (2.4 GB) per step of the shipped recipe (Lite1, batch 64 at 128 px, mixup),
and 1.81 s per step against 1.46 s with this (measured once, docs/history.md; ``fp32-glibc`` against
``fp32``).
Raising glibc's mmap threshold to its maximum (32 MiB) and its trim threshold keeps those blocks in
the heap for the next step. The arithmetic is untouched, so a model trains to the same weights.

It changes the whole process (memory stays at its peak until the process ends), so the commands
that train or calibrate call it, not the library or the servers.

>>> keep_freed_memory()  # glibc (Linux); False where the C library is another
True
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes a C int
TOP_PAD = 1 << 30  # grow the heap in 1 GiB steps: fewer, larger extensions


def keep_freed_memory() -> bool:
    """Tell glibc to keep freed blocks for reuse; True if it accepted every setting."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows)
        return False
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD))
    return all(mallopt(option, value) == 1 for option, value in settings)
