"""What each stage trains: `align` only the SID rows, `instruct` everything (or LoRA adapters).

Stages chain by convention: `instruct` starts from `<output_dir>/align/`, never from a pasted path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import PreTrainedModel

from neo.model.sid_rows import split_sid_rows
from neo.vocab import SIDVocab

STAGES = ("align", "instruct")
TRAINABLE = ("sid_rows", "full", "lora")


def prepare_for_stage(
    model: PreTrainedModel, vocab: SIDVocab, stage_cfg: Mapping[str, Any]
) -> PreTrainedModel:
    """Set which parameters train, per `stage.trainable`; returns the model to hand to the engine."""
    trainable = stage_cfg.get("trainable")
    if trainable == "sid_rows":
        split_sid_rows(model, vocab.base_size)
        return model
    if trainable == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    if trainable == "lora":
        return _with_lora(model, vocab, stage_cfg.get("lora") or {})
    raise ValueError(f"stage.trainable must be one of {TRAINABLE}, got {trainable!r}")


def _with_lora(model: PreTrainedModel, vocab: SIDVocab, lora_cfg: Mapping[str, Any]) -> PreTrainedModel:
    """LoRA on every linear layer, plus the SID rows of the embedding (and tied head) as trainable tokens."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=int(lora_cfg.get("r", 16)),
        lora_alpha=int(lora_cfg.get("alpha", 32)),
        lora_dropout=float(lora_cfg.get("dropout", 0.0)),
        target_modules=lora_cfg.get("target_modules", "all-linear"),
        trainable_token_indices=list(range(vocab.base_size, vocab.total_size)),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
