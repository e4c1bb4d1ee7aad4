"""Where a recipe runs: one rule for the `device` setting of every recipe and baseline."""

from __future__ import annotations

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
