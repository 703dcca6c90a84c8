"""Keep freed memory for reuse while the statistics pass runs (glibc only; elsewhere a no-op).

Every batch of the pass allocates the same large tensors again: the SAE's [tok, d_sae]
activations and, with the CE losses, three copies of the [batch, pos, d_vocab] logits (200 MB at
32 × 128 tokens and a 4,096-token vocabulary). glibc serves blocks that large with ``mmap`` and
returns them on free, so each batch pays the kernel to map and zero every page again. Raising
the mmap and trim thresholds for the length of the pass lets those blocks be reused from the
heap instead (measured in benchmarks/README.md: the pass with CE losses 2.9 s -> 1.9 s). At the
end the thresholds go back to glibc's defaults and the heap is trimmed, so the memory is
returned before the pages are rendered. Within the pass, ``trim_before`` hands free pages back
ahead of each batch and of its [tok, d_sae] activations where those are large, so the holes a
kept heap accumulates do not stay resident (``release_freed_memory``: the same after a stage).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 128 * 1024
"""glibc's default for both thresholds (mallopt(3))."""
KEEP = 2**31 - 1
"""Largest value mallopt takes (an int): every block comes from the heap and stays there."""

_lock = threading.Lock()
_depth = 0


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):  # TypeError: Windows has no "this process" library
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None  # not glibc
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, large freed blocks stay in the process for the next allocation.

    Nested uses are fine: only the outermost restores the defaults and trims the heap.
    """
    global _depth
    libc = _libc()
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(M_MMAP_THRESHOLD, KEEP)
            libc.mallopt(M_TRIM_THRESHOLD, KEEP)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_THRESHOLD)
                libc.malloc_trim(0)


TRIM_MIN_BYTES = 256 << 20
"""``trim_before`` trims only ahead of an allocation at least this large: smaller ones cost
less than the page faults that trimming brings back."""


def trim_before(n_bytes: int) -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``), even inside
    ``reuse_freed_memory``, ahead of an allocation of ``n_bytes`` (at least ``TRIM_MIN_BYTES``).

    The pass's heap keeps freed blocks for reuse, but a block as large as a batch's [tok, d_sae]
    activations often fits none of the holes the forward's temporaries left, so the heap grows
    and the holes stay resident: at GPT-2 small with 24,576 features the pass's RSS crept up by
    0.3-0.4 GiB over 8 batches. Trimmed first, the holes cost no memory until reused; the
    price is re-faulting them (~1 us per 4 KiB page, ~2% of such a batch's time).
    """
    libc = _libc()
    if libc is not None and n_bytes >= TRIM_MIN_BYTES:
        libc.malloc_trim(0)


def release_freed_memory() -> None:
    """Collect unreachable objects (a TransformerLens model's modules hold reference cycles) and
    hand the heap's free pages back to the system (glibc ``malloc_trim``; elsewhere only the
    collection). Inside ``reuse_freed_memory`` only the collection runs."""
    gc.collect()
    libc = _libc()
    with _lock:
        if libc is not None and _depth == 0:
            libc.malloc_trim(0)
