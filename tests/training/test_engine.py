"""The engine: which parameters each stage changes, packing, schedule, kill-and-resume."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from neo.tasks import pack
from neo.training import Engine, LabelledPositionsLoss, TrainSettings, collate, lr_factor, prepare_for_stage
from neo.training.engine import adamw

ZERO0 = {"stage": 0}


def settings(**overrides) -> TrainSettings:
    values = dict(lr=1e-2, micro_batch_size=4, max_steps=3, warmup_steps=1, log_every=1, weight_decay=0.1)
    return TrainSettings(**{**values, **overrides})


@pytest.mark.parametrize("tied", [True, False])
def test_align_changes_only_the_sid_rows(make_tiny, make_rows, tmp_path, tied):
    model, tokenizer, vocab = make_tiny(tied)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = make_rows(vocab.base_size, vocab.total_size, 16)
    engine = Engine(
        prepare_for_stage(model, vocab, {"trainable": "sid_rows"}),
        rows,
        tmp_path,
        settings(),
        ZERO0,
        tokenizer.pad_token_id,
        progress=False,
    )
    engine.train()
    after = engine.export_model().state_dict()
    assert after.keys() == before.keys()
    base = vocab.base_size
    for name, old in before.items():
        new = after[name]
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            assert torch.equal(new[:base], old[:base]), f"{name}: text rows moved"
            assert not torch.equal(new[base:], old[base:]), f"{name}: SID rows did not train"
        else:
            assert torch.equal(new, old), f"{name} changed in the align stage"


def test_instruct_changes_every_parameter(make_tiny, make_rows, tmp_path):
    model, tokenizer, vocab = make_tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = make_rows(vocab.base_size, vocab.total_size, 16)
    engine = Engine(
        prepare_for_stage(model, vocab, {"trainable": "full"}),
        rows,
        tmp_path,
        settings(),
        ZERO0,
        tokenizer.pad_token_id,
        progress=False,
    )
    metrics = engine.train()
    assert [m["step"] for m in metrics] == [1, 2, 3]
    after = engine.export_model().state_dict()
    unchanged = [name for name, old in before.items() if torch.equal(after[name], old)]
    assert unchanged == []
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 3


def test_engine_trains_in_training_mode_even_from_an_eval_mode_model(make_tiny, make_rows, tmp_path):
    model, tokenizer, vocab = make_tiny()
    model.eval()  # what from_pretrained hands over: dropout off
    modes: list[bool] = []
    model.model.layers[0].register_forward_hook(lambda module, args, output: modes.append(module.training))
    rows = make_rows(vocab.base_size, vocab.total_size, 16)
    Engine(model, rows, tmp_path, settings(), ZERO0, tokenizer.pad_token_id, progress=False).train()
    assert modes and all(modes)


@pytest.mark.parametrize("packed", [False, True])
def test_engine_trains_the_hf_loss_selectively_with_fused_adamw(make_tiny, make_rows, tmp_path, packed):
    model, tokenizer, vocab = make_tiny()
    reference = copy.deepcopy(model)
    rows = make_rows(vocab.base_size, vocab.total_size, 24)
    if packed:
        rows = pack(rows, 48, pad_id=0)
    engine = Engine(
        prepare_for_stage(model, vocab, {"trainable": "full"}),
        rows,
        tmp_path,
        settings(max_steps=1),
        ZERO0,
        0,
        progress=False,
    )
    wrapper = engine.engine.module
    assert isinstance(wrapper, LabelledPositionsLoss) and wrapper.selective and wrapper.packed_attention
    assert engine.model is model
    assert all(group["fused"] for group in engine.engine.optimizer.param_groups)
    batch = collate([rows[i] for i in engine.micro_batches(0)[0]], pad_id=0)
    del batch["real_tokens"]
    assert ("position_ids" in batch) == packed
    expected = reference(**batch, use_cache=False).loss.item()
    [record] = engine.train()
    assert record["loss"] == pytest.approx(expected, rel=1e-5)


def test_adamw_is_fused_only_where_torch_has_the_kernel():
    def fused(dtype: torch.dtype, device_type: str) -> bool:
        parameter = torch.nn.Parameter(torch.zeros(2, dtype=dtype), requires_grad=dtype.is_floating_point)
        return adamw([{"params": [parameter]}], settings(), device_type).param_groups[0]["fused"]

    assert fused(torch.float32, "cpu") and fused(torch.bfloat16, "cuda")
    assert not fused(torch.float32, "xla") and not fused(torch.int64, "cpu")


def test_packed_rows_do_not_attend_across_examples(make_tiny):
    model, tokenizer, vocab = make_tiny()
    model.eval()
    first, second = [5, 9, 11, 3], [7, 2, 8]
    alone = [model(input_ids=torch.tensor([ids])).logits[0] for ids in (first, second)]
    packed = collate(
        [
            {
                "input_ids": first + second + [0],
                "labels": first + second + [-100],
                "attention_mask": [1] * 7 + [0],
                "position_ids": [0, 1, 2, 3, 0, 1, 2, 0],
            }
        ],
        pad_id=0,
    )
    assert "attention_mask" not in packed and int(packed["real_tokens"]) == 7
    # use_cache=False as in training: transformers derives the packed mask only without a KV cache
    logits = model(
        input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
    ).logits[0]
    assert torch.allclose(logits[:4], alone[0], atol=1e-5)
    assert torch.allclose(logits[4:7], alone[1], atol=1e-5)


def test_unpacked_rows_are_padded_with_a_mask_and_no_loss():
    batch = collate(
        [{"input_ids": [4, 5, 6], "labels": [-100, 5, 6]}, {"input_ids": [7], "labels": [7]}], pad_id=0
    )
    assert batch["input_ids"].tolist() == [[4, 5, 6], [7, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 5, 6], [7, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


@given(warmup=st.integers(0, 50), total=st.integers(1, 500), ratio=st.floats(0, 1))
def test_schedule_warms_up_then_decays_to_the_floor(warmup, total, ratio):
    factors = [lr_factor(s, warmup, total, ratio) for s in range(total + 5)]
    warm = min(warmup, total)
    assert all(0 <= f <= 1 + 1e-9 for f in factors) and factors[0] > 0
    assert all(f >= ratio - 1e-9 for f in factors[warm:])
    assert factors[:warm] == sorted(factors[:warm])
    tail = factors[warm:]
    assert tail == sorted(tail, reverse=True)
    assert factors[-1] == pytest.approx(ratio)


def test_data_order_is_a_function_of_seed_and_step(make_tiny, make_rows, tmp_path):
    model, tokenizer, vocab = make_tiny()
    rows = make_rows(vocab.base_size, vocab.total_size, 10)
    engine = Engine(
        prepare_for_stage(model, vocab, {"trainable": "full"}),
        rows,
        tmp_path,
        settings(micro_batch_size=2, grad_accum=2, max_steps=5),
        ZERO0,
        0,
        progress=False,
    )
    epoch = [i for step in (0, 1) for micro in engine.micro_batches(step) for i in micro]
    assert sorted(epoch) == sorted(set(epoch)) and len(epoch) == 8  # no row twice within an epoch
    assert engine.micro_batches(3) == engine.micro_batches(3)
    assert engine.micro_batches(2) != engine.micro_batches(0)  # a new epoch reshuffles


class _Killed(Exception):
    pass


def test_kill_and_resume_reproduces_the_loss_curve(make_tiny, make_rows, tmp_path):
    model, tokenizer, vocab = make_tiny()
    rows = make_rows(vocab.base_size, vocab.total_size, 24)
    run = settings(max_steps=8, save_every=3, micro_batch_size=4)

    def fresh(directory, log_fn=None):
        return Engine(
            prepare_for_stage(copy.deepcopy(model), vocab, {"trainable": "full"}),
            rows,
            directory,
            run,
            ZERO0,
            0,
            log_fn=log_fn,
            progress=False,
        )

    reference = [m["loss"] for m in fresh(tmp_path / "straight").train()]

    def kill_at_step_5(record):
        if record["step"] == 5:
            raise _Killed

    with pytest.raises(_Killed):
        fresh(tmp_path / "killed", kill_at_step_5).train()
    assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["step-3"]
    resumed = fresh(tmp_path / "killed").train(resume=True)
    assert [m["step"] for m in resumed] == list(range(1, 9))
    assert [m["loss"] for m in resumed] == pytest.approx(reference, rel=1e-6)


def test_lora_instruct_exports_a_plain_model_with_merged_adapters(make_tiny, make_rows, tmp_path):
    model, tokenizer, vocab = make_tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = make_rows(vocab.base_size, vocab.total_size, 16)
    stage = {"trainable": "lora", "lora": {"r": 4, "alpha": 8}}
    engine = Engine(
        prepare_for_stage(model, vocab, stage), rows, tmp_path, settings(), ZERO0, 0, progress=False
    )
    engine.train()
    after = engine.export_model().state_dict()
    assert after.keys() == before.keys()
    assert not torch.equal(
        after["model.layers.0.self_attn.q_proj.weight"], before["model.layers.0.self_attn.q_proj.weight"]
    )
    embedding = "model.embed_tokens.weight"
    assert torch.equal(after[embedding][: vocab.base_size], before[embedding][: vocab.base_size])
    assert not torch.equal(after[embedding][vocab.base_size :], before[embedding][vocab.base_size :])
    assert torch.equal(after["model.norm.weight"], before["model.norm.weight"])
