"""Where a recipe runs: one rule for the `device` setting of every recipe and baseline, and the host
allocator tuning every recipe starts with."""

from __future__ import annotations

import ctypes
import os
import platform
import re

import torch


def check_device_name(name: str) -> str:
    """`name` if it is a device setting neo understands; configs call this so a typo fails before any work."""
    if name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", name):
        return name
    raise ValueError(f"device must be auto, cpu or cuda[:N], got {name!r}")


def resolve_device(name: str) -> torch.device:
    """`auto` is the GPU when torch sees one, else the CPU; `cpu` and `cuda[:N]` are taken as given."""
    if check_device_name(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} asked for, but torch sees no GPU on this machine")
    return torch.device(name)


# glibc's malloc hands every block above its mmap threshold (at most 32 MiB, by default) straight to
# the kernel and unmaps it on free. PyTorch on the CPU allocates logits and activations that size at
# every step, so each step page-faults them in again: on the 2-core machine the quickstart evaluation
# spent twice as long in the kernel as in torch (152 s -> 45 s with the thresholds raised).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
ALLOCATOR_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest threshold it accepts
ALLOCATOR_ENV = "NEO_TUNE_MALLOC"


def tune_host_allocator() -> bool:
    """Keep large freed host blocks in the process (glibc only); True when the thresholds were raised.

    Freed memory is reused instead of returned to the kernel, so a job's resident memory stays at its
    peak. `NEO_TUNE_MALLOC=0` leaves the allocator as it is; so do non-glibc platforms (macOS, musl).
    """
    if os.environ.get(ALLOCATOR_ENV, "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, ALLOCATOR_THRESHOLD)
        and libc.mallopt(M_TRIM_THRESHOLD, ALLOCATOR_THRESHOLD)
    )
