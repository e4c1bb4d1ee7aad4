"""Fixtures of the training tests: the mini world of tests/model, an adapted tiny model, synthetic rows."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pytest

from neo.data import Catalog
from neo.model import adapt_model, load_base_model
from neo.sids.table import load_tables
from neo.vocab import SIDVocab

_spec = importlib.util.spec_from_file_location(
    "model_conftest", Path(__file__).parents[1] / "model" / "conftest.py"
)
_model_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_model_conftest)
mini_world = _model_conftest.mini_world
write_mini_world = _model_conftest.write_mini_world
mini_tables = _model_conftest.mini_tables

TINY = dict(
    preset="tiny",
    tokenizer_vocab_size=400,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    num_kv_heads=2,
    intermediate_size=64,
    max_position_embeddings=256,
    tie_word_embeddings=True,
    seed=0,
)


def synthetic_rows(
    base_size: int, total_size: int, count: int, length: int = 24, seed: int = 0
) -> datasets.Dataset:
    """Rows of a text prompt (no loss) then an answer mixing text and SID tokens (loss)."""
    rng = np.random.default_rng(seed)
    rows = {"input_ids": [], "labels": [], "attention_mask": []}
    for _ in range(count):
        n = int(rng.integers(length // 2, length + 1))
        prompt = rng.integers(1, base_size, n // 2)
        answer = np.where(
            rng.random(n - n // 2) < 0.5,
            rng.integers(base_size, total_size, n - n // 2),
            rng.integers(1, base_size, n - n // 2),
        )
        rows["input_ids"].append([*prompt.tolist(), *answer.tolist()])
        rows["labels"].append([-100] * len(prompt) + answer.tolist())
        rows["attention_mask"].append([1] * n)
    return datasets.Dataset.from_dict(rows)


@pytest.fixture
def make_rows() -> Callable[..., datasets.Dataset]:
    return synthetic_rows


@pytest.fixture
def make_tiny(mini_world) -> Callable[..., tuple]:
    """`make_tiny(tied=True)` -> (model, tokenizer, vocab): a tiny Llama adapted to the mini world's SIDs."""

    def build(tied: bool = True) -> tuple:
        catalog_dir, sids_dir = mini_world
        catalog, tables = Catalog.load(catalog_dir), load_tables(sids_dir)
        model, tokenizer = load_base_model({**TINY, "tie_word_embeddings": tied}, catalog)
        vocab = SIDVocab(len(tokenizer), {t: table.codebook_sizes for t, table in tables.items()})
        adapt_model(model, tokenizer, vocab, catalog, tables)
        return model, tokenizer, vocab

    return build
