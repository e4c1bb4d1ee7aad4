"""The training loop on DeepSpeed: one code path for 1 CPU process and N GPU processes.

DeepSpeed owns what differs between setups (ZeRO sharding, bf16 master weights, gradient
accumulation boundaries, clipping); this module owns what must not differ: the data order (a pure
function of seed and step, so a resumed run sees exactly the batches the killed one would have),
the learning-rate schedule, logging and checkpoint cadence. The optimizer is `torch.optim.AdamW` (its
fused kernel where torch has one, as in the HF Trainer's default `adamw_torch_fused`), so nothing is
compiled at start-up on a CPU-only machine. DeepSpeed is handed `LabelledPositionsLoss(model)`, which
applies the output head at labelled positions only and keeps packed examples' attention within each
example without masking (`neo/training/loss.py`).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import deepspeed
import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, PreTrainedModel

from neo.io import write_jsonl
from neo.model.sid_rows import SplitEmbedding, merge_sid_rows, split_sid_rows
from neo.training.checkpoint import STATES_DIR, latest_state, prune_states, state_dir
from neo.training.dropout import add_residual_dropout
from neo.training.loss import IGNORE_INDEX, LabelledPositionsLoss

FUSED_ADAMW_DEVICES = ("cpu", "cuda")
SHM_COMM_OP = "deepspeed_shm_comm"
METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one stage's loop (the `stage` config group)."""

    lr: float
    """Peak learning rate, reached after `warmup_steps`."""
    micro_batch_size: int
    """Rows per process per forward pass (packed rows hold several examples)."""
    grad_accum: int = 1
    epochs: float = 1.0
    """Passes over the data; ignored when `max_steps` is set."""
    max_steps: int | None = None
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    """Warm-up as a fraction of all steps; the larger of this and `warmup_steps` applies."""
    min_lr_ratio: float = 0.1
    """Cosine decay ends at `lr * min_lr_ratio`."""
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    save_every: int = 0
    """Steps between resumable training states; 0 saves none."""
    keep_states: int = 2
    hidden_dropout: float = 0.0
    """Residual dropout on embeddings and sub-layer outputs while training (`neo.training.dropout`)."""

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.micro_batch_size <= 0 or self.grad_accum <= 0:
            raise ValueError(f"stage: lr, micro_batch_size and grad_accum must be positive, got {self}")
        if self.max_steps is None and self.epochs <= 0:
            raise ValueError("stage: set max_steps or a positive number of epochs")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"stage.min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrainSettings:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in cfg.items() if k in known}
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to `min_ratio` at `total` steps (warm-up capped at `total`)."""
    warmup = min(warmup, total)
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def collate(rows: list[Mapping[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a micro-batch to its longest row.

    Packed rows (with `position_ids`) are passed without an attention mask: transformers then derives
    a block-diagonal causal mask from the position resets, so packed examples never attend to each
    other (padding restarts at position 0 too and so forms its own, label-free, segments).
    """
    length = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    packed = "position_ids" in rows[0]
    positions = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.as_tensor(row["input_ids"])
        labels[i, :n] = torch.as_tensor(row["labels"])
        mask[i, :n] = torch.as_tensor(row["attention_mask"]) if "attention_mask" in row else 1
        if packed:
            positions[i, :n] = torch.as_tensor(row["position_ids"])
    batch = {"input_ids": ids, "labels": labels}
    if packed:
        batch["position_ids"] = positions
    else:
        batch["attention_mask"] = mask
    batch["real_tokens"] = mask.sum()
    return batch


def init_distributed() -> None:
    """Join (or, for a plain `python` run, create) the process group: nccl on GPU, gloo on CPU."""
    if dist.is_initialized():
        return
    if not torch.cuda.is_available():
        # DeepSpeed's CPU backend would JIT-compile a shared-memory all-reduce (a C++ toolchain and a minute
        # on first start); gloo's own all-reduce is all a CPU run needs.
        deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False
    if "RANK" not in os.environ:  # launched without torchrun: a world of one
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        os.environ.update(
            RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
        )
    deepspeed.init_distributed(
        dist_backend="nccl" if torch.cuda.is_available() else "gloo", auto_mpi_discovery=False, verbose=False
    )
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def deepspeed_config(zero: Mapping[str, Any], settings: TrainSettings, world_size: int) -> dict[str, Any]:
    """The DeepSpeed config: the `deepspeed` group's ZeRO section plus what the stage decides."""
    on_gpu = torch.cuda.is_available()
    return {
        "train_micro_batch_size_per_gpu": settings.micro_batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "train_batch_size": settings.micro_batch_size * settings.grad_accum * world_size,
        "gradient_clipping": settings.clip,
        "zero_optimization": dict(zero),
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": on_gpu and torch.cuda.is_bf16_supported()},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


def adamw(groups: list[dict[str, Any]], settings: TrainSettings, device_type: str) -> torch.optim.AdamW:
    """AdamW over `groups`, fused where torch has the kernel (floating-point parameters on CPU or CUDA).

    The fused kernel updates every tensor of a group in one pass instead of a chain of per-op loops;
    the HF Trainer's default (`adamw_torch_fused`) does the same. It is decided here because torch
    checks devices and dtypes only at the first `step`. DeepSpeed's ZeRO and bf16 optimizers step this
    optimizer on fp32 master partitions on the same device, so the choice holds under them too.
    """
    fused = device_type in FUSED_ADAMW_DEVICES and all(
        torch.is_floating_point(p) for group in groups for p in group["params"]
    )
    return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas, fused=fused)


class Engine:
    """Train one stage's model on tokenised rows; resumable; writes `<stage dir>/metrics.jsonl`."""

    def __init__(
        self,
        model: PreTrainedModel,
        rows: datasets.Dataset,
        stage_dir: str | os.PathLike,
        settings: TrainSettings,
        zero: Mapping[str, Any],
        pad_id: int,
        log_fn: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = True,
    ):
        init_distributed()
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.rows, self.settings, self.pad_id = rows, settings, pad_id
        self.stage_dir = Path(stage_dir)
        self.log_fn, self.progress = log_fn, progress
        self.zero_stage = int(zero.get("stage", 0))
        self.global_batch = settings.micro_batch_size * settings.grad_accum * self.world
        if len(rows) < self.global_batch:
            raise ValueError(
                f"{len(rows)} training rows cannot fill one global batch of {self.global_batch} "
                f"(micro_batch_size x grad_accum x {self.world} processes); lower them"
            )
        self.steps_per_epoch = len(rows) // self.global_batch
        self.total_steps = settings.max_steps or max(1, round(settings.epochs * self.steps_per_epoch))
        warmup = max(settings.warmup_steps, round(settings.warmup_ratio * self.total_steps))
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("the model has no trainable parameters")
        decay = [p for p in trainable if p.ndim >= 2]
        no_decay = [p for p in trainable if p.ndim < 2]
        groups = [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        self._dropout_hooks = add_residual_dropout(model, settings.hidden_dropout)
        optimizer = adamw(
            [g for g in groups if g["params"]], settings, "cuda" if torch.cuda.is_available() else "cpu"
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, warmup, self.total_steps, settings.min_lr_ratio)
        )
        self.engine, _, _, _ = deepspeed.initialize(
            model=LabelledPositionsLoss(model),
            optimizer=optimizer,
            lr_scheduler=schedule,
            config=deepspeed_config(zero, settings, self.world),
        )
        self.metrics: list[dict[str, Any]] = []
        self._epoch_order: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

    @property
    def model(self) -> PreTrainedModel:
        """The model being trained (under DeepSpeed's engine and the loss wrapper; may be a PEFT model)."""
        return self.engine.module.model

    # ----- data order -----------------------------------------------------------------------------
    def micro_batches(self, step: int) -> list[list[int]]:
        """Row indices of this rank's micro-batches at `step`: a pure function of (seed, step, rank)."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        if self._epoch_order[0] != epoch:  # one permutation per epoch, not per step (large datasets)
            self._epoch_order = (
                epoch,
                np.random.default_rng([self.settings.seed, epoch]).permutation(len(self.rows)),
            )
        order = self._epoch_order[1]
        window = order[offset * self.global_batch : (offset + 1) * self.global_batch]
        size = self.settings.micro_batch_size
        return [
            window[(m * self.world + self.rank) * size : (m * self.world + self.rank + 1) * size].tolist()
            for m in range(self.settings.grad_accum)
        ]

    # ----- the loop ------------------------------------------------------------------------------
    def train(self, resume: bool = False) -> list[dict[str, Any]]:
        """Run to `total_steps` (from the newest training state when `resume`); returns the metrics."""
        start = self._resume() if resume else 0
        bar = tqdm(
            total=self.total_steps,
            initial=start,
            desc=f"train {self.stage_dir.name}",
            unit="step",
            disable=not self.progress or self.rank != 0,
            dynamic_ncols=True,
        )
        device = self.engine.device
        self.engine.train()  # from_pretrained hands models over in eval mode: dropout would be off
        window_loss, window_tokens, window_steps, window_start = 0.0, 0, 0, time.perf_counter()
        for step in range(start, self.total_steps):
            lr = self.engine.get_lr()[0]
            for indices in self.micro_batches(step):
                columns = self.rows[indices]
                batch = collate(
                    [{k: columns[k][i] for k in columns} for i in range(len(indices))], self.pad_id
                )
                window_tokens += int(batch.pop("real_tokens"))
                loss = self.engine(**{k: v.to(device) for k, v in batch.items()})
                self.engine.backward(loss)
                self.engine.step()
                window_loss += float(loss.detach()) / self.settings.grad_accum
            window_steps += 1
            done = step + 1
            if done % self.settings.log_every == 0 or done == self.total_steps:
                # on the engine's device: NCCL (the GPU backend) reduces only CUDA tensors
                stats = torch.tensor([window_loss, float(window_tokens)], dtype=torch.float64, device=device)
                dist.all_reduce(stats)
                elapsed = time.perf_counter() - window_start
                record = {
                    "step": done,
                    "loss": stats[0].item() / (self.world * window_steps),
                    "lr": lr,
                    "tokens_per_s": stats[1].item() / max(elapsed, 1e-9),
                    "epoch": done / self.steps_per_epoch,
                }
                self._log(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
                window_loss, window_tokens, window_steps, window_start = 0.0, 0, 0, time.perf_counter()
            bar.update(1)
            if self.settings.save_every and done % self.settings.save_every == 0 and done < self.total_steps:
                self.save_state(done)
        bar.close()
        return self.metrics

    def _log(self, record: dict[str, Any]) -> None:
        self.metrics.append(record)
        if self.rank == 0:
            write_jsonl(self.stage_dir / METRICS_FILE, self.metrics)
            if self.log_fn is not None:
                self.log_fn(record)

    # ----- training states -----------------------------------------------------------------------
    def save_state(self, step: int) -> Path:
        """Model, optimizer, schedule and step into `checkpoints/step-<step>` (temp folder, then rename)."""
        final = state_dir(self.stage_dir, step)
        tmp = final.with_name(f".tmp-{final.name}")
        self.engine.save_checkpoint(str(tmp), tag="state", client_state={"step": step})
        dist.barrier()
        if self.rank == 0:
            os.replace(tmp, final)
            prune_states(self.stage_dir, self.settings.keep_states)
        dist.barrier()
        return final

    def _resume(self) -> int:
        found = latest_state(self.stage_dir)
        if found is None:
            if self.rank == 0:
                tqdm.write(
                    f"resume: no training state under {self.stage_dir / STATES_DIR}; starting at step 0"
                )
            return 0
        path, step = found
        _, client = self.engine.load_checkpoint(str(path), tag="state")
        if client is None or client.get("step") != step:
            raise ValueError(f"{path}: training state does not record step {step}")
        metrics_path = self.stage_dir / METRICS_FILE
        if metrics_path.exists():
            previous = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
            self.metrics = [r for r in previous if r["step"] <= step]
        return step

    # ----- export --------------------------------------------------------------------------------
    def export_model(self) -> PreTrainedModel | None:
        """On rank 0, a plain HF model with the trained weights (SID rows merged, LoRA merged); None elsewhere.

        Under ZeRO-3 the shards are gathered into a fresh copy of the model built from its config.
        """
        module = self.model
        for hook in self._dropout_hooks:  # the export is a plain model: no training-only dropout left on it
            hook.remove()
        if self.zero_stage == 3:
            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                state = (
                    {k: v.detach().clone() for k, v in module.state_dict().items()}
                    if self.rank == 0
                    else None
                )
            if self.rank != 0:
                return None
            fresh = AutoModelForCausalLM.from_config(module.config)
            if isinstance(module.get_input_embeddings(), SplitEmbedding):
                split_sid_rows(fresh, module.get_input_embeddings().base_size)
            fresh.load_state_dict(state)
            module = fresh
        if self.rank != 0:
            return None
        if hasattr(module, "merge_and_unload"):
            module = module.merge_and_unload()
        merge_sid_rows(module)
        return module.float().cpu()
