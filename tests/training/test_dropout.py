"""Residual dropout: on while training only, where the original Transformer puts it, and gone on export."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from neo.training import Engine, TrainSettings
from neo.training.dropout import add_residual_dropout


def llama(layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(config)


def test_dropout_acts_in_training_mode_only_and_comes_off_again():
    model = llama()
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))
    reference = model.eval()(ids).logits
    handles = add_residual_dropout(model, 0.5)
    assert len(handles) == 1 + 2 * 2  # the embeddings, then attention and MLP of each layer
    assert torch.equal(model.eval()(ids).logits, reference)
    assert not torch.allclose(model.train()(ids).logits, reference)
    for handle in handles:
        handle.remove()
    assert torch.equal(model.train()(ids).logits, reference)


def test_dropout_drops_each_block_output_at_the_rate():
    model = llama(layers=1).train()
    attention_outputs: list[torch.Tensor] = []
    add_residual_dropout(model, 0.25)
    # a hook registered after neo's sees the dropped output
    model.model.layers[0].self_attn.register_forward_hook(
        lambda module, args, output: attention_outputs.append(output[0])
    )
    model(torch.randint(0, 50, (64, 32), generator=torch.Generator().manual_seed(1)))
    zero_share = float((attention_outputs[0] == 0).float().mean())
    assert zero_share == pytest.approx(0.25, abs=0.02)


def test_zero_rate_adds_nothing_and_bad_rates_are_refused():
    model = llama()
    assert add_residual_dropout(model, 0.0) == []
    with pytest.raises(ValueError, match=r"hidden_dropout must lie in \[0, 1\), got 1.0"):
        add_residual_dropout(model, 1.0)


def test_architectures_without_attention_and_mlp_blocks_are_named():
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=1, n_head=2, bos_token_id=0,
                                       eos_token_id=0))
    with pytest.raises(ValueError, match="GPT2LMHeadModel has no decoder `layers` with self_attn/mlp"):
        add_residual_dropout(model, 0.1)


def test_engine_trains_with_dropout_and_exports_a_model_without_it(make_tiny, make_rows, tmp_path):
    model, tokenizer, vocab = make_tiny()
    rows = make_rows(vocab.base_size, vocab.total_size, 16)
    settings = TrainSettings(lr=1e-2, micro_batch_size=4, max_steps=2, log_every=1, hidden_dropout=0.3)
    engine = Engine(model, rows, tmp_path, settings, {"stage": 0}, tokenizer.pad_token_id, progress=False)
    hooked = [m for m in model.modules() if m._forward_hooks]
    assert len(hooked) == 1 + 2 * model.config.num_hidden_layers
    engine.train()
    exported = engine.export_model()
    assert not any(m._forward_hooks for m in exported.modules())
    ids = torch.tensor([rows[0]["input_ids"]])
    assert torch.equal(exported.train()(ids).logits, exported.train()(ids).logits)
