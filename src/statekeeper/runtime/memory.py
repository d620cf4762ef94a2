"""The allocator setting of long-running processes (``serve``, ``worker``).

glibc's malloc serves a block larger than its mmap threshold from its own mapping, and
gives it back to the system when it is freed; but when such a block is freed it raises
the threshold to that block's size (up to 32 MiB). After a large payload's 1 MiB chunks
have come and gone, later chunks then come from the heap, and the heap keeps what it
grew to: a worker that stored two 100 MiB payloads held 60-80 MiB more at its peak,
some of the time (tests/integration/test_large_payloads.py saw 2.2x the payload or
2.9x). Fixing the threshold at its default (128 KiB) stops that: large blocks always
come from mappings and go back when freed. Small objects, the common case, are not
concerned. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("statekeeper.runtime")

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
THRESHOLD = 128 * 1024


def keep_large_blocks_mapped() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; whether it was set."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    if not done:
        log.info("the allocator's mmap threshold could not be set")
    return done
