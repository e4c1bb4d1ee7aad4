"""neo's decoding kernels: Triton versions beside their torch references, chosen by device (`dispatch`)."""

from .bitmask_torch import sid_bitmask_torch as sid_bitmask
from .dispatch import apply_token_bitmask_, sid_mask_
from .modes import DONE, FREE, SPAN, UNCONSTRAINED

__all__ = ["DONE", "FREE", "SPAN", "UNCONSTRAINED", "apply_token_bitmask_", "sid_bitmask", "sid_mask_"]
