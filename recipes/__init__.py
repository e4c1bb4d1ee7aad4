"""Thin Hydra entry points (`neo run RECIPE`, or `python -m neo.recipes.RECIPE` under torchrun).

Every recipe is a long-running job, so importing this package tunes the host allocator first
(`neo.devices.tune_host_allocator`; `NEO_TUNE_MALLOC=0` opts out).
"""

from neo.devices import tune_host_allocator

tune_host_allocator()
