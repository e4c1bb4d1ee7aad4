"""The selective loss equals HF's full-forward loss (and its gradients), or falls back to it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    Gemma2ForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaForCausalLM,
    PreTrainedModel,
)

import neo.training.loss
from neo.model.sid_rows import split_sid_rows
from neo.training.loss import (
    SELECTIVE_MODEL_TYPES,
    LabelledPositionsLoss,
    layout_examples,
    supports_selective_loss,
)

VOCAB = 300
BASE = 260  # rows [BASE, VOCAB) play the SID rows


def small_config(model_type: str, **overrides):
    """A 2-layer, 32-wide config of any architecture (2 KV heads), seeded for the weights built from it."""
    torch.manual_seed(0)
    shape = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=2)
    return AutoConfig.for_model(model_type, **{**shape, **overrides})


def tiny_llama(tied: bool = True) -> LlamaForCausalLM:
    return LlamaForCausalLM(small_config("llama", tie_word_embeddings=tied))


def padded_batch(rows: int = 3, length: int = 14) -> dict[str, torch.Tensor]:
    """Prompt halves unlabelled, one row shorter (padded, masked), labels reaching the SID rows."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (rows, length), generator=generator)
    labels = ids.clone()
    labels[:, : length // 2] = -100
    mask = torch.ones_like(ids)
    mask[-1, length - 4 :] = 0
    labels[-1, length - 4 :] = -100
    ids[-1, length - 4 :] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def packed_batch() -> dict[str, torch.Tensor]:
    """Two rows of packed examples (positions restart per example), no attention mask, a padding tail."""
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(1, VOCAB, (2, 12), generator=generator)
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2], [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 0, 1]])
    labels = ids.clone()
    labels[0, [0, 1, 2, 5, 6, 9, 10, 11]] = -100
    labels[1, [0, 1, 2, 3, 7, 8, 10, 11]] = -100
    return {"input_ids": ids, "position_ids": positions, "labels": labels}


def full_forward_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch, use_cache=False).loss


def gradients(model: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_loss_and_gradients(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> None:
    wrapped = LabelledPositionsLoss(model)
    assert wrapped.selective and wrapped.packed_attention
    expected = full_forward_loss(model, batch)
    expected_grads = gradients(model, expected)
    selective = wrapped(**batch)
    selective_grads = gradients(model, selective)
    torch.testing.assert_close(selective, expected, rtol=1e-5, atol=0)
    assert selective_grads.keys() == expected_grads.keys() and expected_grads
    for name, grad in expected_grads.items():
        torch.testing.assert_close(selective_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("tied", [True, False])
def test_selective_loss_matches_the_full_forward_on_padded_rows(tied):
    assert_same_loss_and_gradients(tiny_llama(tied), padded_batch())


@pytest.mark.parametrize("tied", [True, False])
def test_selective_loss_matches_the_full_forward_on_packed_rows(tied):
    assert_same_loss_and_gradients(tiny_llama(tied), packed_batch())


def no_sdpa_fallback(*args, **kwargs):
    raise AssertionError("packed rows fell back to transformers' sdpa")


@pytest.mark.parametrize("tied", [True, False])
def test_packed_rows_attend_blockwise_within_examples(tied, monkeypatch):
    monkeypatch.setattr(neo.training.loss, "sdpa_attention_forward", no_sdpa_fallback)
    model = tiny_llama(tied)
    assert_same_loss_and_gradients(model, packed_batch())
    assert model.config._attn_implementation == "sdpa"  # switched for the forward only


@pytest.mark.parametrize("model_type", sorted(SELECTIVE_MODEL_TYPES))
def test_every_selective_model_type_matches_on_packed_rows(model_type, monkeypatch):
    """GQA (4 query heads, 2 KV heads); mistral and olmo3 pass a sliding window longer than any example."""
    monkeypatch.setattr(neo.training.loss, "sdpa_attention_forward", no_sdpa_fallback)
    config = small_config(model_type, num_attention_heads=4, head_dim=8, pad_token_id=0, bos_token_id=1,
                          eos_token_id=2)
    assert_same_loss_and_gradients(AutoModelForCausalLM.from_config(config), packed_batch())


def test_a_sliding_window_shorter_than_an_example_takes_sdpa():
    config = small_config("mistral", sliding_window=3)
    assert_same_loss_and_gradients(AutoModelForCausalLM.from_config(config), packed_batch())


@given(st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=6), min_size=1, max_size=4))
def test_layout_puts_each_example_in_one_row_of_a_block_barely_wider(rows):
    length = max(sum(row) for row in rows)
    positions = torch.zeros(len(rows), length, dtype=torch.long)
    examples = []  # (first flat index, size)
    for r, sizes in enumerate(rows):
        sizes = sizes + ([length - sum(sizes)] if sum(sizes) < length else [])
        start = 0
        for size in sizes:
            positions[r, start : start + size] = torch.arange(size)
            examples.append((r * length + start, size))
            start += size
    layout = layout_examples(positions)
    assert layout.slots.unique().numel() == positions.numel()
    assert int(layout.slots.max()) < layout.size
    assert sum(count for count, _ in layout.blocks) == len(examples)
    block_starts = torch.tensor([0] + [count * width for count, width in layout.blocks]).cumsum(0)
    for first, size in examples:
        slots = layout.slots[first : first + size]
        block = int(torch.searchsorted(block_starts, slots[0], right=True)) - 1
        width = layout.blocks[block][1]
        assert (slots[0] - block_starts[block]) % width == 0  # starts a block row
        assert torch.equal(slots, slots[0] + torch.arange(size))  # in order, contiguous
        assert size <= width < 2 * size


@pytest.mark.parametrize("tied", [True, False])
def test_selective_loss_matches_with_split_sid_rows(tied):
    model = tiny_llama(tied)
    split_sid_rows(model, BASE)
    assert_same_loss_and_gradients(model, padded_batch())
    assert_same_loss_and_gradients(model, packed_batch())


def test_selective_loss_matches_a_lora_model_with_trainable_sid_tokens():
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules="all-linear",
        trainable_token_indices=list(range(BASE, VOCAB)),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(tiny_llama(), config)
    assert_same_loss_and_gradients(model, padded_batch())
    assert_same_loss_and_gradients(model, packed_batch())


def tiny_gemma2() -> Gemma2ForCausalLM:
    return Gemma2ForCausalLM(small_config("gemma2", head_dim=16, final_logit_softcapping=30.0))


def tiny_gpt2() -> GPT2LMHeadModel:
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2))


def prompt_tuned_llama() -> torch.nn.Module:
    from peft import PromptTuningConfig, get_peft_model

    return get_peft_model(tiny_llama(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))


@pytest.mark.parametrize(
    "build", [tiny_gemma2, tiny_gpt2, prompt_tuned_llama], ids=["softcapped gemma2", "gpt2", "prompt tuning"]
)
def test_unsupported_models_take_the_full_forward(build):
    torch.manual_seed(0)
    model = build().eval()  # no dropout: both forwards must see the same network
    wrapped = LabelledPositionsLoss(model)
    assert not wrapped.selective
    batch = padded_batch()
    torch.testing.assert_close(wrapped(**batch), full_forward_loss(model, batch), rtol=0, atol=0)


def test_logit_scaling_in_the_config_disables_the_selective_path():
    model = tiny_llama()
    assert supports_selective_loss(model)
    model.config.logit_scale = 0.5
    assert not supports_selective_loss(model)
