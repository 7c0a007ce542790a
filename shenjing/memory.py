"""Keep freed memory for reuse, so that large temporaries do not fault in fresh pages each step.

glibc's malloc hands arrays above its mmap threshold (128 KiB, growing to at most 32 MiB) to
the kernel and back on every allocation: each training step then maps, zero-fills and faults
in every large activation again, about 1 ms per 6 MB, which costs a CNN training step a quarter
of its time. ``keep_freed_memory()`` raises the thresholds with ``mallopt`` (M_MMAP_THRESHOLD
64 MiB, M_TRIM_THRESHOLD 512 MiB, M_TOP_PAD 64 MiB): freed blocks stay in the process for the
next step. The process keeps up to ~0.5 GiB it no longer uses instead of returning it.

shenjing calls it once on import (Linux with glibc only); set ``SHENJING_KEEP_MEMORY=0`` in the
environment before importing to leave malloc as it is. ``release()`` hands what is kept back
to the operating system now (glibc's malloc_trim), for example after training.

``new_block`` gives memory for buffers that are reused every step: it starts on a cache line
(NumPy's arrays start 16 bytes into one) and comes from huge pages when large.
"""

import ctypes
import ctypes.util
import mmap
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # from glibc's malloc.h
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 512 << 20
TOP_PAD = 64 << 20

kept = False  # whether keep_freed_memory() has changed malloc's settings in this process


def _libc():
    """glibc's C library, or None on other systems and libcs."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    glibc = hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")  # not musl
    return libc if glibc else None


def release() -> bool:
    """Give the freed memory malloc keeps back to the operating system; True if it could."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    libc.malloc_trim(0)
    return True


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks (see the module docstring); True if it did."""
    global kept
    libc = _libc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = [mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            mallopt(M_TOP_PAD, TOP_PAD)]
    kept = all(result == 1 for result in done)
    return kept


def keep_on_import() -> bool:
    """keep_freed_memory() unless SHENJING_KEEP_MEMORY is '0', 'false' or 'no'."""
    if os.environ.get("SHENJING_KEEP_MEMORY", "1").strip().lower() in ("0", "false", "no"):
        return False
    return keep_freed_memory()


# ----- aligned buffers ------------------------------------------------------------------------
# NOTE: in an array that starts 16 bytes into a cache line, every 64-byte (AVX-512) load
# straddles two lines; buffers from huge pages also spare the TLB misses of walking 4 KiB pages.
# Together they made an LSTM training step (W3) 5-7% faster (in-process A/B).

ALIGN = 64  # bytes: one cache line, one AVX-512 register
HUGE_PAGE = 2 << 20
HUGE_FROM = 1 << 20  # smaller blocks would waste more than half of a huge page
_PRIVATE_MAPS = hasattr(mmap, "MAP_PRIVATE") and hasattr(mmap, "MADV_HUGEPAGE")


def new_block(nbytes: int):
    """(buffer, offset): nbytes of writable memory from buffer[offset:], cache-line aligned.
    From HUGE_FROM up it is a private anonymous map, rounded up to whole huge pages and marked
    for transparent huge pages (Linux; ignored where the kernel does not offer them); for
    blocks kept and reused, since a fresh map faults in its pages on first touch."""
    if nbytes >= HUGE_FROM and _PRIVATE_MAPS:
        block = mmap.mmap(-1, -(-nbytes // HUGE_PAGE) * HUGE_PAGE,
                          flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            block.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass
        return block, 0
    block = bytearray(nbytes + ALIGN)
    return block, -ctypes.addressof(ctypes.c_char.from_buffer(block)) % ALIGN
