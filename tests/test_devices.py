"""The one rule for every recipe's `device` setting."""

from __future__ import annotations

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
