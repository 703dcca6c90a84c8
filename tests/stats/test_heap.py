import ctypes
import os

import pytest

from saesite.stats.heap import TRIM_MIN_BYTES, _libc, reuse_freed_memory, trim_before

BLOCK = 64 << 20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mmapped_bytes() -> int:
    """Bytes malloc currently serves with mmap (glibc's mallinfo2().hblkhd)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    return libc.mallinfo2().hblkhd


glibc_only = pytest.mark.skipif(
    _libc() is None or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc 2.33+"
)


@glibc_only
def test_large_blocks_come_from_the_heap_inside_the_block_and_from_mmap_after():
    before = _mmapped_bytes()
    with reuse_freed_memory():
        with reuse_freed_memory():  # nested: the inner exit changes nothing
            pass
        block = bytearray(BLOCK)
        assert _mmapped_bytes() - before < BLOCK
        del block
    block = bytearray(BLOCK)
    assert _mmapped_bytes() - before >= BLOCK  # defaults restored
    del block


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@glibc_only
def test_trim_before_a_large_allocation_hands_back_the_heaps_free_pages_inside_the_block():
    with reuse_freed_memory():
        block = b"\x01" * BLOCK  # written: its pages are resident
        pin = b"\x02" * 8192  # from the heap after it, so the freed block is a hole, not the top
        del block
        freed = _resident_bytes()
        trim_before(TRIM_MIN_BYTES - 1)  # small allocations to come: the hole stays for reuse
        assert _resident_bytes() > freed - BLOCK // 2
        trim_before(TRIM_MIN_BYTES)
        assert _resident_bytes() < freed - BLOCK // 2
        del pin
