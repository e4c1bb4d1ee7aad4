"""The one rule for every recipe's `device` setting, and the host allocator tuning recipes start with."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from neo.devices import check_device_name, resolve_device


def test_auto_follows_what_torch_sees_and_cpu_is_taken_as_given():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_bad_or_unavailable_devices_are_named():
    with pytest.raises(ValueError, match="got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="got 'cudax'"):
        check_device_name("cudax")  # the name check alone, as configs run it
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device=cuda:1 asked for"):
            resolve_device("cuda:1")


# Allocates and frees a 64 MiB tensor (and a small one that outlives it, as in a training step) until the
# tuned heap has grown to fit the pattern, then counts the page faults five more rounds cost.
REALLOCATE = """
import resource, torch
from neo.devices import tune_host_allocator
tuned = tune_host_allocator()
def step():
    global small
    x = torch.ones(16 * 2**20); small = torch.ones(10); del x
for _ in range(15):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _reallocation_faults(tune: bool) -> tuple[str, int]:
    env = {**os.environ, "NEO_TUNE_MALLOC": "1" if tune else "0"}
    out = subprocess.run([sys.executable, "-c", REALLOCATE], env=env, capture_output=True, text=True, check=True)
    tuned, faults = out.stdout.split()
    return tuned, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's mallopt")
def test_tuned_allocator_reuses_large_blocks_instead_of_faulting_them_in_again():
    default_tuned, default_faults = _reallocation_faults(tune=False)
    tuned, tuned_faults = _reallocation_faults(tune=True)
    assert (default_tuned, tuned) == ("False", "True")
    assert default_faults > 5 * 16_000  # 64 MiB is 16,384 pages: mapped and unmapped every time
    assert tuned_faults < default_faults / 20
