import ctypes

import pytest

from saesite.stats.heap import _libc, reuse_freed_memory

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
