"""The real SmolLM2-135M-Instruct: converts from the bundled GGUF, adapts, trains the align stage a few
steps, and still answers a plain question sensibly (the SID rows must not take over text generation)."""

from __future__ import annotations

import datasets
import pytest
import torch

from neo.data import Catalog
from neo.model import adapt_model, load_base_model
from neo.sids.table import load_tables
from neo.training import Engine, TrainSettings, prepare_for_stage
from neo.vocab import SIDVocab

pytestmark = pytest.mark.slow


def answer(model, tokenizer, question: str) -> str:
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_smollm2_adapts_trains_and_still_talks(mini_world, tmp_path):
    pytest.importorskip("gguf")
    catalog_dir, sids_dir = mini_world
    catalog, tables = Catalog.load(catalog_dir), load_tables(sids_dir)
    model, tokenizer = load_base_model({"preset": "smollm2_135m"}, catalog)
    assert len(tokenizer) == 49152 and model.config.tie_word_embeddings
    assert "Paris" in answer(model, tokenizer, "What is the capital of France?")

    vocab = SIDVocab(len(tokenizer), {t: table.codebook_sizes for t, table in tables.items()})
    adapt_model(model, tokenizer, vocab, catalog, tables)
    titles = dict(zip(catalog.items["id"], catalog.items["title"], strict=True))
    rows = {"input_ids": [], "labels": [], "attention_mask": []}
    for item, codes in zip(tables["episode"].item_ids, tables["episode"].codes.tolist(), strict=True):
        prompt = tokenizer(f"Which episode is '{titles[item]}'? ", add_special_tokens=False)["input_ids"]
        span = vocab.span_ids("episode", codes)
        rows["input_ids"].append(prompt + span)
        rows["labels"].append([-100] * len(prompt) + span)
        rows["attention_mask"].append([1] * (len(prompt) + len(span)))
    settings = TrainSettings(lr=1e-3, micro_batch_size=4, max_steps=4, log_every=1)
    engine = Engine(
        prepare_for_stage(model, vocab, {"trainable": "sid_rows"}),
        datasets.Dataset.from_dict(rows),
        tmp_path,
        settings,
        {"stage": 0},
        tokenizer.pad_token_id,
        progress=False,
    )
    metrics = engine.train()
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    trained = engine.export_model()
    assert "Paris" in answer(trained, tokenizer, "What is the capital of France?")
