"""Tokenizer, presets and vocabulary adaptation: exact small cases on the mini world."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neo.data import Catalog
from neo.model import adapt_model, load_base_model, merge_sid_rows, split_sid_rows
from neo.model.adapt import ordinal_rows
from neo.model.sid_rows import SplitEmbedding, SplitHead
from neo.sids.table import SIDTable, load_tables
from neo.vocab import SIDVocab

TINY = dict(
    preset="tiny",
    tokenizer_vocab_size=400,
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    num_kv_heads=2,
    intermediate_size=64,
    max_position_embeddings=256,
    tie_word_embeddings=True,
    seed=0,
)


def adapted(mini_world, tied: bool = True, noise_std: float = 0.1):
    catalog_dir, sids_dir = mini_world
    catalog, tables = Catalog.load(catalog_dir), load_tables(sids_dir)
    model, tokenizer = load_base_model({**TINY, "tie_word_embeddings": tied}, catalog)
    vocab = SIDVocab(len(tokenizer), {t: table.codebook_sizes for t, table in tables.items()})
    base_rows = model.get_input_embeddings().weight.detach().clone()
    adapt_model(model, tokenizer, vocab, catalog, tables, noise_std=noise_std)
    return model, tokenizer, vocab, catalog, tables, base_rows


def test_tiny_tokenizer_is_trained_on_the_catalog_and_cached(mini_world):
    catalog = Catalog.load(mini_world[0])
    _, first = load_base_model(TINY, catalog)
    _, second = load_base_model(TINY, catalog)
    assert first.get_vocab() == second.get_vocab()
    assert len(first.tokenize("jazz")) == 1  # a catalog word is one token
    assert first.decode(first("The jazz hour 3", add_special_tokens=False)["input_ids"]) == "The jazz hour 3"
    assert "<|im_start|>assistant" in first.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )


def test_unknown_preset_is_rejected_by_name(mini_world):
    with pytest.raises(ValueError, match="model.preset"):
        load_base_model({"preset": "gpt5"}, Catalog.load(mini_world[0]))


@pytest.mark.parametrize("tied", [True, False])
def test_adapt_resizes_and_keeps_text_rows(mini_world, tied):
    model, tokenizer, vocab, _, tables, base_rows = adapted(mini_world, tied)
    embedding = model.get_input_embeddings().weight
    assert embedding.shape[0] == vocab.total_size == len(tokenizer) == model.config.vocab_size
    assert model.get_output_embeddings().weight.shape[0] == vocab.total_size
    assert (model.get_output_embeddings().weight is embedding) == tied
    assert torch.equal(embedding[: vocab.base_size], base_rows)
    codes = tables["episode"].codes[7].tolist()
    assert tokenizer(vocab.span_text("episode", codes), add_special_tokens=False)[
        "input_ids"
    ] == vocab.span_ids("episode", codes)


def test_code_rows_start_at_the_mean_title_embedding_of_their_items(mini_world):
    model, tokenizer, vocab, catalog, tables, base_rows = adapted(mini_world, noise_std=0.0)
    embedding = model.get_input_embeddings().weight.detach()
    titles = dict(zip(catalog.items["id"], catalog.items["title"], strict=True))
    table = tables["show"]
    under = [item for item, code in zip(table.item_ids, table.codes.tolist(), strict=True) if code[0] == 2]
    item_means = [
        base_rows[tokenizer(titles[i], add_special_tokens=False)["input_ids"]].mean(0) for i in under
    ]
    expected = torch.stack(item_means).mean(0)
    row = embedding[vocab.code_id("show", 0, 2)]
    assert torch.nn.functional.cosine_similarity(row, expected, dim=0) > 0.9999
    assert torch.allclose(row, expected, atol=1e-6)
    name = base_rows[tokenizer("show", add_special_tokens=False)["input_ids"]].mean(0)
    assert torch.nn.functional.cosine_similarity(embedding[vocab.open_id("show")], name, dim=0) > 0.9999


@pytest.mark.parametrize("tied", [True, False])
def test_split_rows_change_nothing_in_the_forward_pass_and_merge_back(mini_world, tied):
    model, _, vocab, *_ = adapted(mini_world, tied)
    ids = torch.tensor([[1, 5, vocab.open_id("show"), vocab.code_id("show", 0, 1), 7]])
    before = model(input_ids=ids).logits
    split_sid_rows(model, vocab.base_size)
    assert isinstance(model.get_input_embeddings(), SplitEmbedding)
    assert isinstance(model.get_output_embeddings(), SplitHead)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"model.embed_tokens.sid_weight"} | (set() if tied else {"lm_head.sid_weight"})
    assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-6)
    merge_sid_rows(model)
    assert isinstance(model.get_input_embeddings(), torch.nn.Embedding)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
    assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-6)


def test_ordinal_rows_make_the_next_rank_one_rotation_away():
    rows = ordinal_rows(32, 64, norm=5.0, generator=torch.Generator().manual_seed(0))
    assert rows.shape == (32, 64)
    assert torch.allclose(rows.norm(dim=1), torch.full((32,), 5.0), atol=1e-4)
    # One linear map fitted on the first ranks' successors gives the successor of every rank.
    step = torch.linalg.lstsq(rows[:12], rows[1:13]).solution
    predicted = rows[:-1] @ step
    nearest = torch.cdist(predicted, rows).argmin(dim=1)
    assert torch.equal(nearest, torch.arange(1, 32))


def test_only_the_rank_level_of_a_nested_type_gets_the_ordinal_code(mini_world):
    catalog_dir, sids_dir = mini_world
    catalog = Catalog.load(catalog_dir)
    flat = load_tables(sids_dir)
    episodes = flat["episode"]
    ranks = np.array([int(item.split("e")[1]) for item in episodes.item_ids])
    shows = np.array([int(item[1 : item.index("e")]) for item in episodes.item_ids])
    codes = np.concatenate([flat["show"].codes[shows], ranks[:, None]], axis=1)
    sizes = (*flat["show"].codebook_sizes, 5)
    rows = {}
    nested = {"source": "nested", "config": {"parent": {"type": "show"}}}
    for source, meta in (("nested", nested), ("byo", {"source": "byo"})):
        tables = {"show": flat["show"], "episode": SIDTable("episode", episodes.item_ids, codes, sizes, meta)}
        model, tokenizer = load_base_model(TINY, catalog)
        vocab = SIDVocab(len(tokenizer), {t: table.codebook_sizes for t, table in tables.items()})
        text_norm = model.get_input_embeddings().weight.detach().norm(dim=1).mean()
        adapt_model(model, tokenizer, vocab, catalog, tables, noise_std=0.0)
        rows[source] = model.get_input_embeddings().weight.detach()
    extra = rows["nested"] - rows["byo"]
    rank_ids = [vocab.code_id("episode", 3, r) for r in range(5)]
    assert torch.allclose(extra[rank_ids].norm(dim=1), torch.full((5,), float(text_norm)), rtol=1e-3)
    others = torch.ones(len(extra), dtype=torch.bool)
    others[rank_ids] = False
    assert torch.equal(extra[others], torch.zeros_like(extra[others]))
