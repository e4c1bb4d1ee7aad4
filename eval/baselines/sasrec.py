"""SASRec (Kang & McAuley, 2018) trained the modern way, as the bar neo's recommender must clear.

Differences from the paper, all of which make it much stronger (Klenitskiy & Vasilev, RecSys 2023):
full softmax cross-entropy over *all* items instead of one sampled negative, the loss at every
position of every training sequence, and early stopping on validation NDCG@10 with full ranking.
Sequences are left-padded; position embeddings count back from the end of the window, so the
last item always sits at the same position in training and at inference.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from neo.eval.baselines.base import Recommender
from neo.eval.metrics import rank_metrics
from torch import nn
from tqdm.auto import tqdm

from neo.devices import check_device_name, resolve_device

PAD = 0  # item index i is token i + 1


@dataclass
class SASRecConfig:
    """Hyper-parameters; the defaults land near the reference numbers on both Amazon benchmarks."""

    hidden: int = 64
    blocks: int = 2
    heads: int = 2
    max_len: int = 50
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 10
    """Epochs without a better validation NDCG@10 before training stops (the best epoch is kept)."""
    seed: int = 0
    device: str = "cpu"
    """cpu | cuda | auto (cuda when available). Scores always come back on the CPU."""

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"SASRec: hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.max_len < 2:
            raise ValueError(f"SASRec: max_len must be >= 2, got {self.max_len}")
        check_device_name(self.device)

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


class _Block(nn.Module):
    """Pre-norm causal self-attention + feed-forward."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ff_norm = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * hidden, hidden)
        )
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0
        )
        x = x + self.dropout(self.out(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.dropout(self.ff(self.ff_norm(x)))


class SASRecModel(nn.Module):
    def __init__(self, n_items: int, config: SASRecConfig):
        super().__init__()
        self.max_len = config.max_len
        self.item_emb = nn.Embedding(n_items + 1, config.hidden, padding_idx=PAD)
        self.pos_emb = nn.Embedding(config.max_len, config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            _Block(config.hidden, config.heads, config.dropout) for _ in range(config.blocks)
        )
        self.norm = nn.LayerNorm(config.hidden)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, H] of left-padded token sequences [B, L] (L <= max_len)."""
        length = tokens.shape[1]
        real = tokens != PAD
        positions = torch.arange(self.max_len - length, self.max_len, device=tokens.device)
        x = self.dropout(self.item_emb(tokens) + self.pos_emb(positions)) * real.unsqueeze(-1)
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        # Attend to earlier real items; every row may see itself, so a padding row is never all-masked.
        mask = (causal & real.unsqueeze(1)) | torch.eye(length, dtype=torch.bool, device=tokens.device)
        mask = mask.unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask) * real.unsqueeze(-1)
        return self.norm(x)

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores over all items (padding token excluded), tied to the input item embeddings."""
        return hidden @ self.item_emb.weight[1:].T


def _left_pad(sequences: list[np.ndarray], max_len: int) -> torch.Tensor:
    length = max(1, max((min(len(s), max_len) for s in sequences), default=1))
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = seq[-max_len:]
        if len(tail):
            out[row, length - len(tail) :] = tail + 1
    return torch.from_numpy(out)


def _length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, generator: torch.Generator
) -> list[np.ndarray]:
    """Shuffled batches of similar-length sequences.

    Most histories are short (mean ~8) but a few fill the window, so random batches would pad almost
    every row to the window; sorting by (length, random key) first cuts the work several-fold while
    each epoch still sees a different batch composition and order.
    """
    noise = torch.rand(len(lengths), generator=generator).numpy()
    order = np.lexsort((noise, lengths))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


class SASRec(Recommender):
    name = "sasrec"

    def __init__(self, item_ids: Sequence[str], config: SASRecConfig | None = None, progress: bool = True):
        super().__init__(item_ids)
        self.config = config or SASRecConfig()
        self.progress = progress
        self.history: list[dict[str, float]] = []
        """One record per epoch: loss, validation NDCG@10/Recall@10, seconds."""

    def fit_indices(
        self, histories: list[np.ndarray], valid: tuple[list[np.ndarray], np.ndarray] | None
    ) -> None:
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.device = cfg.torch_device()
        self.model = SASRecModel(self.n_items, cfg).to(self.device)
        # Each sequence predicts its own next item at every position: inputs seq[:-1], labels seq[1:].
        train = [seq[-(cfg.max_len + 1) :] for seq in histories if len(seq) >= 2]
        if not train:
            raise ValueError("SASRec: no training history has two or more items of the target type")
        lengths = np.array([len(seq) for seq in train])
        optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best_ndcg, best_state, stale = -1.0, None, 0
        epochs = tqdm(range(cfg.max_epochs), desc="sasrec", unit="epoch", disable=not self.progress)
        for epoch in epochs:
            started = time.perf_counter()
            self.model.train()
            total, count = 0.0, 0
            for batch_rows in _length_bucketed_batches(lengths, cfg.batch_size, generator):
                batch = [train[i] for i in batch_rows]
                tokens = _left_pad(batch, cfg.max_len + 1).to(self.device)
                inputs, labels = tokens[:, :-1], tokens[:, 1:]
                hidden = self.model(inputs)
                real = labels != PAD
                logits = self.model.item_logits(hidden[real])
                loss = F.cross_entropy(logits, labels[real] - 1)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * int(real.sum())
                count += int(real.sum())
            record = {"epoch": epoch + 1, "loss": total / count}
            if valid is not None:
                record.update({f"valid_{k}": v for k, v in self.evaluate(*valid).items()})
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            epochs.set_postfix(
                loss=f"{record['loss']:.3f}", ndcg10=f"{record.get('valid_ndcg@10', math.nan):.4f}"
            )
            if valid is None:
                continue
            if record["valid_ndcg@10"] > best_ndcg:
                best_ndcg, best_state, stale = (
                    record["valid_ndcg@10"],
                    copy.deepcopy(self.model.state_dict()),
                    0,
                )
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()

    def evaluate(
        self, histories: list[np.ndarray], targets: np.ndarray, batch_size: int = 1024
    ) -> dict[str, float]:
        known = targets >= 0
        kept = [h for h, keep in zip(histories, known, strict=True) if keep]
        return rank_metrics(self.rank_indices(kept, targets[known], batch_size=batch_size), ks=(10,))

    @torch.no_grad()
    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        hidden = self.model(_left_pad(histories, self.config.max_len).to(self.device))[:, -1]
        self.model.train(was_training)
        return self.model.item_logits(hidden).float().cpu()

    def summary(self) -> dict:
        """Config, epochs run and the best epoch, for benchmark reports."""
        best = max(self.history, key=lambda r: r.get("valid_ndcg@10", -1.0)) if self.history else {}
        return {
            "config": asdict(self.config),
            "epochs": len(self.history),
            "best_epoch": best.get("epoch"),
            "train_seconds": sum(r["seconds"] for r in self.history),
        }
