"""Catalog-constrained decoding: device trie, per-row state, item beam search, mixed generation, HF processor."""

from neo.decoding.beam import ItemHit, beam_search_items
from neo.decoding.filters import ItemFilters, with_availability
from neo.decoding.generate import ItemSegment, MixedOutput, TextSegment, generate_mixed, parse_segments
from neo.decoding.processor import SIDConstraintLogitsProcessor
from neo.decoding.trie import ItemTrie

__all__ = [
    "ItemFilters",
    "ItemHit",
    "ItemSegment",
    "ItemTrie",
    "MixedOutput",
    "SIDConstraintLogitsProcessor",
    "TextSegment",
    "beam_search_items",
    "generate_mixed",
    "parse_segments",
    "with_availability",
]
