"""Benchmark: neo's training loop against the Hugging Face `Trainer`, same model, data and batch, one process.

    neo run bench_training [bench.rounds=3] [bench.steps=10] [bench.pack_length=512]

Three runs over the same short examples (a tiny Llama from `conf/model/tiny.yaml`'s shape):
`hf_trainer` (padding to the longest row of each batch), `neo` (the same batches through DeepSpeed)
and `neo_packed` (the examples packed into fixed rows, the same number of token slots per step).
Throughput counts non-padding tokens only. The three take turns `bench.rounds` times and each ratio is
the median of the rounds' ratios: on a shared machine the load drifts, and runs close in time see
about the same load. Results go to `<output_dir>/bench_training.json`, with every round's figures and
the 1/5/15-minute load averages at the start and the end.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import datasets
import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

from neo.devices import tune_host_allocator
from neo.io import write_json
from neo.tasks import pack
from neo.training import Engine, TrainSettings, collate

log = logging.getLogger(__name__)


def short_examples(
    count: int, vocab_size: int, min_length: int, max_length: int, seed: int
) -> datasets.Dataset:
    """Prompt + answer rows of uniform random length, loss on the answer half (like task examples)."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"input_ids": [], "labels": [], "attention_mask": []}
    for _ in range(count):
        n = int(rng.integers(min_length, max_length + 1))
        ids = rng.integers(1, vocab_size, n).tolist()
        rows["input_ids"].append(ids)
        rows["labels"].append([-100] * (n // 2) + ids[n // 2 :])
        rows["attention_mask"].append([1] * n)
    return datasets.Dataset.from_dict(rows)


def tiny_model(model_cfg: DictConfig, vocab_size: int, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=model_cfg.hidden_size,
            num_hidden_layers=model_cfg.num_layers,
            num_attention_heads=model_cfg.num_heads,
            num_key_value_heads=model_cfg.num_kv_heads,
            intermediate_size=model_cfg.intermediate_size,
            max_position_embeddings=model_cfg.max_position_embeddings,
            tie_word_embeddings=model_cfg.tie_word_embeddings,
        )
    )


class _Clock(TrainerCallback):
    """Wall time of the Trainer's steps after the warm-up ones."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def real_tokens(rows: datasets.Dataset, order: list[int]) -> int:
    return int(sum(sum(rows[i]["attention_mask"]) for i in order))


def bench_hf_trainer(
    model: LlamaForCausalLM, rows: datasets.Dataset, bench: DictConfig, out: Path
) -> dict[str, float]:
    """HF Trainer with the same AdamW, schedule shape and batches (sequential sampler, padding per batch)."""
    clock = _Clock(bench.warmup_steps)
    args = TrainingArguments(
        output_dir=str(out / "hf_trainer"),
        per_device_train_batch_size=bench.micro_batch_size,
        max_steps=bench.warmup_steps + bench.steps,
        learning_rate=1e-3,
        lr_scheduler_type="cosine",
        warmup_steps=1,
        max_grad_norm=1.0,
        logging_steps=10**9,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,
        seed=bench.seed,
        train_sampling_strategy="sequential",
        bf16=torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=rows,
        callbacks=[clock],
        data_collator=lambda batch: {k: v for k, v in collate(batch, pad_id=0).items() if k != "real_tokens"},
    )
    trainer.train()
    measured = range(
        bench.warmup_steps * bench.micro_batch_size,
        (bench.warmup_steps + bench.steps) * bench.micro_batch_size,
    )
    tokens = real_tokens(rows, [i % len(rows) for i in measured])
    return {"tokens_per_s": tokens / (clock.end - clock.start), "seconds": clock.end - clock.start}


def bench_neo(
    model: LlamaForCausalLM, rows: datasets.Dataset, micro_batch_size: int, bench: DictConfig, out: Path
) -> dict[str, float]:
    """neo's Engine (ZeRO-0) on `rows`; tokens/s from its own metrics over the steps after warm-up."""
    settings = TrainSettings(
        lr=1e-3,
        micro_batch_size=micro_batch_size,
        max_steps=bench.warmup_steps + bench.steps,
        warmup_steps=1,
        log_every=bench.warmup_steps,
        seed=bench.seed,
    )
    engine = Engine(model, rows, out, settings, {"stage": 0}, pad_id=0, progress=False)
    metrics = engine.train()
    # log_every = warmup_steps, so the records after the first cover exactly the measured steps
    measured = [m for m in metrics if m["step"] > bench.warmup_steps]
    return {"tokens_per_s": float(np.mean([m["tokens_per_s"] for m in measured]))}


CONTESTANTS = ("hf_trainer", "neo", "neo_packed")


def one_round(
    cfg: DictConfig, rows: datasets.Dataset, packed: datasets.Dataset, out: Path
) -> dict[str, float]:
    """Tokens/s of the three runs, one after another, each on a fresh model with the same seed."""
    bench = cfg.bench
    slots = bench.micro_batch_size * bench.max_length  # token slots of an unpacked batch at its longest
    model = partial(tiny_model, cfg.model, bench.vocab_size, bench.seed)
    return {
        "hf_trainer": bench_hf_trainer(model(), rows, bench, out)["tokens_per_s"],
        "neo": bench_neo(model(), rows, bench.micro_batch_size, bench, out / "neo")["tokens_per_s"],
        "neo_packed": bench_neo(
            model(), packed, max(1, slots // bench.pack_length), bench, out / "neo_packed"
        )["tokens_per_s"],
    }


@hydra.main(config_path="pkg://neo.conf", config_name="bench_training", version_base="1.3")
def main(cfg: DictConfig) -> None:
    bench, out = cfg.bench, Path(cfg.output_dir)
    if bench.steps % bench.warmup_steps:
        raise ValueError(f"bench.steps ({bench.steps}) must be a multiple of bench.warmup_steps")
    load_at_start = os.getloadavg()
    rows = short_examples(bench.examples, bench.vocab_size, bench.min_length, bench.max_length, bench.seed)
    packed = pack(rows, bench.pack_length, pad_id=0)
    rounds = [one_round(cfg, rows, packed, out / f"round-{r}") for r in range(bench.rounds)]
    results: dict[str, Any] = {
        name: {"tokens_per_s": float(np.mean([r[name] for r in rounds]))} for name in CONTESTANTS
    }
    for name in ("neo", "neo_packed"):
        # the median over rounds of the ratio within a round: runs close in time share the machine's load
        results[f"ratio_{name}"] = float(np.median([r[name] / r["hf_trainer"] for r in rounds]))
    results["rounds"] = rounds
    results["device"] = (
        torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}"
    )
    results["load_average"] = {"start": load_at_start, "end": os.getloadavg()}
    write_json(out / "bench_training.json", results)
    log.info(
        "tokens/s  hf_trainer %.0f | neo %.0f (x%.2f) | neo packed %.0f (x%.2f) | %d rounds | load %.2f -> %.2f",
        results["hf_trainer"]["tokens_per_s"],
        results["neo"]["tokens_per_s"],
        results["ratio_neo"],
        results["neo_packed"]["tokens_per_s"],
        results["ratio_neo_packed"],
        bench.rounds,
        load_at_start[0],
        results["load_average"]["end"][0],
    )


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
