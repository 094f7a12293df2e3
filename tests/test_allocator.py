"""keep_freed_memory: large blocks (activations, gradients) come from glibc's heap, not from a fresh mmap each."""

import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys, torch
from carvana.model.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    keep_freed_memory()
before = mallinfo2().hblkhd
block = torch.ones(2**26)  # 256 MiB, the size of a big activation
print(mallinfo2().hblkhd - before)
"""


def mmapped_bytes_for_a_block(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tunes glibc's malloc, Linux only")
def test_large_blocks_come_from_the_heap():
    assert mmapped_bytes_for_a_block("default") >= 2**28  # glibc's default: a fresh mmap, unmapped on free
    assert mmapped_bytes_for_a_block("tuned") == 0
