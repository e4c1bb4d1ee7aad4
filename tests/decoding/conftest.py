"""Fixtures of the decoder tests: a random two-type catalog and a bigram model with exact log-probabilities."""

from __future__ import annotations

import pytest
import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

from neo.decoding.synthetic import random_sid_tables
from neo.decoding.trie import ItemTrie
from neo.vocab import SIDVocab


class BigramLM(torch.nn.Module):
    """Logits depend only on the previous token (a fixed random table), so every score has a closed form.

    Speaks the HF causal-LM calling convention (`cache`, `logits_to_keep`, output with `cache`) and counts
    its forward passes.
    """

    def __init__(self, vocab_size: int, seed: int = 0):
        super().__init__()
        self.table = torch.randn(vocab_size, vocab_size, generator=torch.Generator().manual_seed(seed)) * 3
        self.calls = 0

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: object = None,
        use_cache: bool = True,
        logits_to_keep: int = 0,
    ) -> CausalLMOutputWithPast:
        self.calls += 1
        return CausalLMOutputWithPast(logits=self.table[input_ids], cache=_NoCache())

    def log_prob(self, previous: int, token: int) -> float:
        return float(torch.log_softmax(self.table[previous], 0)[token])


class _NoCache:
    def reorder_cache(self, index: torch.Tensor) -> None:
        """A bigram model needs no past; the beam search still calls this."""


@pytest.fixture(scope="module")
def vocab() -> SIDVocab:
    return SIDVocab(40, {"a": [6, 5], "b": [7, 3, 4]})


@pytest.fixture(scope="module")
def tables(vocab: SIDVocab) -> dict:
    return random_sid_tables(vocab, {"a": 17, "b": 50}, seed=1)


@pytest.fixture(scope="module")
def trie(vocab: SIDVocab, tables: dict) -> ItemTrie:
    return ItemTrie.build(vocab, tables)


@pytest.fixture(scope="module")
def bigram(vocab: SIDVocab) -> BigramLM:
    return BigramLM(vocab.total_size)
