"""The training forward: next-token cross-entropy over labelled positions, computed only there.

Completion-only rows label a short answer after a long prompt, yet `model(**batch, labels=...)`
projects every position onto the whole vocabulary and then discards most of the logits. For model
types whose causal-LM head is exactly `lm_head(hidden)` (no logit soft-capping or scaling),
`LabelledPositionsLoss` runs the decoder body, gathers the hidden states whose next-token label is not
-100, and applies the head and the fp32 cross-entropy to those rows only: the same loss as HF's
`ForCausalLMLoss` (shift by one, ignore -100, mean over labelled tokens) with a fraction of the head's
work. Other model types take the plain `model(**batch, labels=...).loss`.

Packed rows (position ids restarting at every example, no attention mask) get a second saving on
those model types when they use `sdpa`: transformers would attend over the whole row under a
block-diagonal mask, computing every cross-example score only to mask it. `packed_sdpa` instead
regroups the tokens into blocks of whole examples of similar length and runs causal attention per
block, so no score crosses an example and no work is spent on the mask.

The engine hands `LabelledPositionsLoss`, not the model, to DeepSpeed, so ZeRO-3 gathers parameters
through the hooks of the submodules it calls, exactly as for the model's own forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface, PretrainedConfig, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.loss.loss_utils import LOSS_MAPPING
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

IGNORE_INDEX = -100

SELECTIVE_MODEL_TYPES = frozenset(
    {"gemma", "llama", "mistral", "olmo", "olmo2", "olmo3", "phi3", "qwen2", "qwen3", "smollm3", "starcoder2"}
)
"""Model types whose `ForCausalLM.forward` computes `logits = self.lm_head(hidden_states)` and nothing else,
and whose attention layers pass the decoder's keyword arguments on to the attention function (checked
against transformers' modeling code; gemma2/3, cohere and granite soft-cap or scale their logits)."""

_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")

PACKED_SDPA = "neo_packed_sdpa"
"""The attention implementation `LabelledPositionsLoss` switches an `sdpa` model to for packed batches."""

_NEUTRAL_ATTENTION_KWARGS = frozenset({"position_ids"})
"""Keyword arguments of the attention layers that never change what attention computes (any other one
takes `sdpa` unless it is None or False, e.g. `use_cache=False`)."""


def base_model(model: nn.Module) -> PreTrainedModel:
    """The HF model under a PEFT wrapper (whose injected layers live in it), or `model` itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_selective_loss(model: nn.Module) -> bool:
    """Whether the head may be applied to the labelled positions only without changing the loss."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and peft_config.is_prompt_learning:
        return False  # the PEFT wrapper's own forward adds the virtual tokens
    base = base_model(model)
    config = getattr(base, "config", None)
    if config is None or getattr(config, "model_type", None) not in SELECTIVE_MODEL_TYPES:
        return False
    if any(getattr(config, name, None) is not None for name in _LOGIT_TRANSFORMS):
        return False
    if base.loss_function is not LOSS_MAPPING["ForCausalLM"]:
        return False
    decoder = base.get_decoder()
    return decoder is not base and base.get_output_embeddings() is not None


@dataclass(frozen=True)
class PackedLayout:
    """The examples of a packed batch regrouped into blocks of examples of similar length.

    Block `i` holds `blocks[i] = (examples, width)`: that many examples, each right-padded to `width`
    tokens; the blocks lie one after another in a buffer of `sum(examples * width)` token slots, and
    `slots[k]` is where token `k` of the flattened `[rows * length]` batch goes.
    """

    slots: torch.Tensor
    blocks: tuple[tuple[int, int], ...]
    longest: int

    @property
    def size(self) -> int:
        return sum(examples * width for examples, width in self.blocks)


def layout_examples(position_ids: torch.Tensor) -> PackedLayout:
    """The layout of `[rows, length]` packed position ids; an example starts wherever a position is not
    its predecessor + 1 (transformers' rule for packed rows), and at every row start.

    An example joins the block of the longest one not yet placed while it is longer than half that
    block's width, so padding at most doubles an example (and its causal attention is at most 4x).
    """
    length = position_ids.shape[1]
    flat = position_ids.reshape(-1)
    starts = torch.ones_like(flat, dtype=torch.bool)
    starts[1:] = flat[1:] != flat[:-1] + 1
    starts[::length] = True
    begin = starts.nonzero().squeeze(1)
    example = starts.cumsum(0) - 1
    offset = torch.arange(flat.numel(), device=flat.device) - begin[example]
    sizes = torch.diff(begin, append=begin.new_tensor([flat.numel()])).cpu().numpy()
    order = np.argsort(-sizes, kind="stable")
    descending = sizes[order]
    first_slot = np.empty(len(sizes), dtype=np.int64)
    blocks, cursor, first = [], 0, 0
    while first < len(order):
        width = int(descending[first])
        end = int(np.searchsorted(-descending, -(width // 2), side="left"))
        first_slot[order[first:end]] = cursor + np.arange(end - first) * width
        blocks.append((end - first, width))
        cursor += (end - first) * width
        first = end
    slots = torch.from_numpy(first_slot).to(flat.device)[example] + offset
    return PackedLayout(slots, tuple(blocks), int(descending[0]))


def packed_sdpa(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    packed_layout: PackedLayout | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each example of a packed batch; transformers' `sdpa` for anything else.

    `packed_layout` comes from `LabelledPositionsLoss` only for packed batches, whose `attention_mask`
    is then the block-diagonal causal mask transformers derived from the same position ids: the
    result is the same, without computing the masked scores. A sliding window shorter than an
    example, an extra attention argument (soft-capping, sinks, biases) or a KV cache takes `sdpa`.
    """
    blockwise = (
        packed_layout is not None
        and getattr(module, "is_causal", True)
        and query.shape[2] == key.shape[2]
        and (sliding_window is None or packed_layout.longest <= sliding_window)
        and all(
            name in _NEUTRAL_ATTENTION_KWARGS or setting is None or setting is False
            for name, setting in kwargs.items()
        )
    )
    if not blockwise:
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            sliding_window=sliding_window,
            **kwargs,
        )
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    rows, heads, length, _ = query.shape
    slots = packed_layout.slots

    def to_buffer(states: torch.Tensor) -> torch.Tensor:
        tokens = states.transpose(1, 2).reshape(rows * length, heads, states.shape[-1])
        return tokens.new_zeros(packed_layout.size, *tokens.shape[1:]).index_copy(0, slots, tokens)

    buffers = (to_buffer(query), to_buffer(key), to_buffer(value))
    outputs, start = [], 0
    for examples, width in packed_layout.blocks:
        end = start + examples * width
        q, k, v = (b[start:end].view(examples, width, heads, -1).transpose(1, 2) for b in buffers)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True)
        outputs.append(attended.transpose(1, 2).reshape(end - start, heads, -1))
        start = end
    return torch.cat(outputs).index_select(0, slots).view(rows, length, heads, -1), None


AttentionInterface.register(PACKED_SDPA, packed_sdpa)
AttentionMaskInterface.register(PACKED_SDPA, sdpa_mask)  # the mask `sdpa` gets, for the cases it handles


@contextmanager
def attention_implementation(config: PretrainedConfig, name: str) -> Iterator[None]:
    """Run the model's attention layers with implementation `name` inside the block only."""
    previous = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = previous


class LabelledPositionsLoss(nn.Module):
    """Wraps a causal LM; `forward(labels=..., **inputs)` returns the mean next-token loss over labelled tokens.

    `inputs` go to the model unchanged (`attention_mask` for padded rows, `position_ids` for packed
    ones), with `use_cache=False`. `selective` says whether the head runs at labelled positions only,
    `packed_attention` whether packed rows take `packed_sdpa` (see the module docstring).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.selective = supports_selective_loss(model)
        self.packed_attention = self.selective and base_model(model).config._attn_implementation == "sdpa"

    def forward(self, labels: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        if not self.selective:
            return self.model(**inputs, labels=labels, use_cache=False).loss
        base = base_model(self.model)
        decoder = base.get_decoder()
        if self.packed_attention and "position_ids" in inputs and "attention_mask" not in inputs:
            layout = layout_examples(inputs["position_ids"])
            with attention_implementation(base.config, PACKED_SDPA):
                hidden = decoder(**inputs, use_cache=False, packed_layout=layout).last_hidden_state
        else:
            hidden = decoder(**inputs, use_cache=False).last_hidden_state
        # position t predicts labels[t + 1]; the last position predicts nothing (as in ForCausalLMLoss)
        targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)
        keep = (targets != IGNORE_INDEX).nonzero().squeeze(1)
        kept = hidden.reshape(-1, hidden.shape[-1]).index_select(0, keep)
        logits = base.get_output_embeddings()(kept).float()
        return F.cross_entropy(logits, targets.index_select(0, keep))
