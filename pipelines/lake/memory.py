"""Giving freed memory back to the operating system between an ingest's batches.

An ingest holds one batch at a time, but freeing a batch does not shrink the process by itself:
Arrow's allocator keeps freed blocks for reuse, and glibc's malloc serves buffers of a few MB
(decompressed objects, numpy arrays) from a heap it trims rarely, after raising its mmap
threshold to the largest buffer freed so far. Measured on a 5M-event day (docs/ingest.md): the
peak grew from one batch's ~800 MB to 1.8 GB over five batches. :func:`bound_heap` fixes the
threshold (buffers of 1 MB and more are mapped and unmapped on their own) and
:func:`give_back` returns what is free after each batch. Both are no-ops off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import pyarrow as pa

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_ONE_MB = 1024 * 1024


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it; musl and others do not)
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def bound_heap() -> bool:
    """Serve buffers of 1 MB and more by mmap, trim the heap above 1 MB free (once a process)."""
    libc = _glibc()
    if libc is None:
        return False
    mapped = libc.mallopt(_M_MMAP_THRESHOLD, _ONE_MB)
    return bool(mapped and libc.mallopt(_M_TRIM_THRESHOLD, _ONE_MB))


def give_back() -> None:
    """Return the memory Arrow's pool and the C heap hold free to the operating system."""
    pa.default_memory_pool().release_unused()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
