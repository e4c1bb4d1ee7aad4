"""Random catalogs and tiny random models for the decoder's tests and benchmark (no training, no downloads)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from neo.sids.table import SIDTable
from neo.vocab import SIDVocab


def random_sid_tables(vocab: SIDVocab, items: Mapping[str, int], seed: int = 0) -> dict[str, SIDTable]:
    """Unique random code tuples for `items[type]` items of each type (at most the codebook's capacity)."""
    rng = np.random.default_rng(seed)
    tables = {}
    for name, count in items.items():
        sizes = np.asarray(vocab.block(name).codebook_sizes, dtype=np.int64)
        capacity = int(np.prod(sizes))
        if count > capacity:
            raise ValueError(
                f"type {name!r}: {count} items do not fit codebooks {tuple(sizes)} ({capacity} codes)"
            )
        flat = rng.choice(capacity, size=count, replace=False)
        strides = np.cumprod(np.r_[sizes[1:], 1][::-1])[::-1]
        codes = (flat[:, None] // strides) % sizes
        tables[name] = SIDTable(name, [f"{name}-{i}" for i in range(count)], codes, sizes.tolist())
    return tables


def tiny_llama(vocab_size: int, seed: int = 0, hidden: int = 64, layers: int = 2) -> torch.nn.Module:
    """A randomly initialised `LlamaForCausalLM` small enough for CPU tests, built from a config in code."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()
