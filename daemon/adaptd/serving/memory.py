"""Give the memory of a replaced model back to the operating system.

A swap that drops a whole model (a merged copy, ``model.merge_adapters``: ~90 MB of tensors for
MiniLM) leaves the freed pages in glibc's arenas, so resident memory ratchets up with promotions
although nothing leaks. Measured on MiniLM, 12 builds cycling over three adapters: RSS
594 -> 724 MB without a trim (plateauing after ~5 swaps), flat at 675 MB with ``malloc_trim(0)``
after each swap. A no-op where libc has no ``malloc_trim`` (musl, macOS).

A trim is not free: it takes the allocator's arena locks while the batcher allocates, and hands
back the pages the batcher's activations reuse, which then fault in again. A version that shares
the base holds about a megabyte of its own (the LoRA factors and the head: 1.3 MB for MiniLM's
default all-linear rank 8), which glibc reuses without help, so such a swap is not worth a trim
(``RELEASE_MIN_BYTES``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import cast


def _trim_function() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


_TRIM = _trim_function()

#: the smallest drop worth a ``malloc_trim``. ``python -m bench.serving --only c --trim always``
#: against the default: 100 promotions of MiniLM versions sharing the base (query/value LoRA,
#: 0.3 MB of their own each) under saturating load. The requests served right after a swap had
#: a p99 1.12-1.19x steady with a trim after every swap (two runs), 0.92-1.09x without (six);
#: resident memory grew 32-57 MB over the 100 either way (bench/serving/README.md,
#: "malloc_trim after a swap").
RELEASE_MIN_BYTES = 32 * 2**20


def worth_releasing(released_bytes: int) -> bool:
    """Whether a swap that dropped ``released_bytes`` of tensors should trim the heap."""
    return released_bytes >= RELEASE_MIN_BYTES


def release_freed_memory() -> bool:
    """Return freed heap pages to the OS; True when the allocator could do it."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))
