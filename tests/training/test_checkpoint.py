"""A stage checkpoint is a normal HF directory plus neo's files, and loads with `from_pretrained`."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from neo.sids.table import load_tables
from neo.training import (
    Engine,
    TrainSettings,
    load_stage_checkpoint,
    prepare_for_stage,
    require_stage,
    save_stage_checkpoint,
)
from neo.vocab import SIDVocab


@pytest.mark.parametrize("tied", [True, False])
def test_align_checkpoint_loads_with_from_pretrained(make_tiny, make_rows, mini_world, tmp_path, tied):
    model, tokenizer, vocab = make_tiny(tied)
    rows = make_rows(vocab.base_size, vocab.total_size, 8)
    settings = TrainSettings(lr=1e-2, micro_batch_size=4, max_steps=2, log_every=1)
    engine = Engine(
        prepare_for_stage(model, vocab, {"trainable": "sid_rows"}),
        rows,
        tmp_path / "align",
        settings,
        {"stage": 0},
        tokenizer.pad_token_id,
        progress=False,
    )
    engine.train()
    trained = engine.export_model()
    sids_dir = tmp_path / "sids"
    shutil.copytree(mini_world[1], sids_dir)
    (sids_dir / "show.codebooks.npz").write_bytes(b"fitted show codebooks")
    (sids_dir / "podcast.codebooks.npz").write_bytes(b"a type without a table")
    save_stage_checkpoint(tmp_path / "align", trained, tokenizer, vocab, sids_dir, {"stage": "align"})

    directory = require_stage(tmp_path / "align", "align", "instruct")
    names = {p.name for p in directory.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
        "neo_vocab.json",
        "neo.json",
        "sids",
        "metrics.jsonl",
    } <= names
    assert sorted(p.name for p in (directory / "sids").glob("*.codebooks.npz")) == ["show.codebooks.npz"]
    assert (directory / "sids" / "show.codebooks.npz").read_bytes() == b"fitted show codebooks"
    loaded = AutoModelForCausalLM.from_pretrained(directory)
    ids = torch.tensor([rows[0]["input_ids"]])
    assert torch.allclose(loaded(input_ids=ids).logits, trained(input_ids=ids).logits, atol=1e-5)
    assert (loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight) == tied
    reloaded_tokenizer = AutoTokenizer.from_pretrained(directory)
    codes = load_tables(directory / "sids")["show"].codes[3].tolist()
    assert reloaded_tokenizer(vocab.span_text("show", codes), add_special_tokens=False)[
        "input_ids"
    ] == vocab.span_ids("show", codes)
    assert SIDVocab.load(directory) == vocab
    assert json.loads((directory / "neo.json").read_text()) == {"stage": "align"}
    _, _, vocab_again = load_stage_checkpoint(directory)
    assert vocab_again == vocab


def test_missing_previous_stage_names_the_command_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="neo run train stage=align"):
        require_stage(tmp_path / "align", "align", "instruct")
