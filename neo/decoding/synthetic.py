"""Random catalogs and tiny random models for the decoder's tests and benchmark (no training, no downloads)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from neo.sids.table import SIDTable
from neo.vocab import SIDVocab


def random_codes(n_items: int, codebook_sizes: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """`n_items` distinct code tuples drawn uniformly from the codebook grid."""
    capacity = int(np.prod(codebook_sizes))
    if n_items > capacity:
        raise ValueError(f"{n_items} items do not fit in codebooks {tuple(codebook_sizes)} ({capacity} codes)")
    flat = rng.choice(capacity, size=n_items, replace=False)
    return np.stack(np.unravel_index(flat, codebook_sizes), axis=1).astype(np.int32)


def random_sid_tables(vocab: SIDVocab, items: Mapping[str, int], seed: int = 0) -> dict[str, SIDTable]:
    """Unique random code tuples for `items[type]` items of each type (at most the codebook's capacity)."""
    rng = np.random.default_rng(seed)
    tables = {}
    for name, count in items.items():
        sizes = tuple(vocab.block(name).codebook_sizes)
        try:
            codes = random_codes(count, sizes, rng)
        except ValueError as exc:
            raise ValueError(f"type {name!r}: {exc}") from None
        tables[name] = SIDTable(name, [f"{name}-{i}" for i in range(count)], codes, list(sizes))
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
