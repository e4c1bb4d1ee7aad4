"""Trainable SID rows beside frozen base rows: what the `align` stage optimises.

`align` must change only the rows of the added SID tokens. Masking gradients of one big embedding
matrix does not achieve that under an optimizer with weight decay, and allocates optimizer state
for every text row; under ZeRO the gradient of one tensor is sharded, so row masks get fragile.
Instead the embedding and the output head are split into two parameters each: the frozen base rows
(`requires_grad=False`) and the trainable SID rows. With tied embeddings the head holds the *same*
two Parameter objects as the embedding (just like a tied HF model holds one), which ZeRO-3 handles.
`merge_sid_rows` puts a plain `nn.Embedding` / `nn.Linear` back before saving.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel


class SplitEmbedding(nn.Module):
    """An embedding table whose rows `[0, base)` and `[base, total)` are separate parameters."""

    def __init__(self, weight: torch.Tensor, base_size: int, padding_idx: int | None = None):
        super().__init__()
        self.base_size = base_size
        self.padding_idx = padding_idx
        self.base_weight = nn.Parameter(weight[:base_size].detach().clone(), requires_grad=False)
        self.sid_weight = nn.Parameter(weight[base_size:].detach().clone())

    @property
    def num_embeddings(self) -> int:
        return self.base_weight.shape[0] + self.sid_weight.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.base_weight.shape[1]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # Two lookups and a select, rather than a lookup in torch.cat(...): no [total, d] copy per step.
        is_sid = (input_ids >= self.base_size).unsqueeze(-1)
        text = F.embedding(input_ids.clamp(max=self.base_size - 1), self.base_weight)
        sid = F.embedding((input_ids - self.base_size).clamp(min=0), self.sid_weight)
        return torch.where(is_sid, sid, text)


class SplitHead(nn.Module):
    """An output projection whose base and SID rows are separate parameters (optionally shared)."""

    def __init__(self, base_weight: nn.Parameter, sid_weight: nn.Parameter):
        super().__init__()
        self.base_weight = base_weight
        self.sid_weight = sid_weight

    @classmethod
    def untied(cls, weight: torch.Tensor, base_size: int) -> SplitHead:
        return cls(
            nn.Parameter(weight[:base_size].detach().clone(), requires_grad=False),
            nn.Parameter(weight[base_size:].detach().clone()),
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.linear(hidden, self.base_weight), F.linear(hidden, self.sid_weight)], dim=-1)


def _is_tied(model: PreTrainedModel) -> bool:
    head = model.get_output_embeddings()
    return head is not None and head.weight is model.get_input_embeddings().weight


def split_sid_rows(model: PreTrainedModel, base_size: int) -> None:
    """Freeze the whole model except the SID rows of its input embedding and output head (in place)."""
    embedding = model.get_input_embeddings()
    tied = _is_tied(model)
    head = model.get_output_embeddings()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    split = SplitEmbedding(embedding.weight, base_size, getattr(embedding, "padding_idx", None))
    model.set_input_embeddings(split)
    if head is None:
        return
    if tied:
        model.set_output_embeddings(SplitHead(split.base_weight, split.sid_weight))
    else:
        if head.bias is not None:
            raise ValueError("output heads with a bias are not supported by the align stage")
        model.set_output_embeddings(SplitHead.untied(head.weight, base_size))


def merge_sid_rows(model: PreTrainedModel) -> None:
    """Undo `split_sid_rows`: plain `nn.Embedding` / `nn.Linear` with the trained rows (in place).

    Call on a model whose parameters are whole on this rank (after ZeRO-3 gathering).
    """
    split = model.get_input_embeddings()
    if not isinstance(split, SplitEmbedding):
        return
    head = model.get_output_embeddings()
    tied = isinstance(head, SplitHead) and head.sid_weight is split.sid_weight
    weight = torch.cat([split.base_weight.detach(), split.sid_weight.detach()])
    embedding = nn.Embedding(
        weight.shape[0],
        weight.shape[1],
        padding_idx=split.padding_idx,
        dtype=weight.dtype,
        device=weight.device,
    )
    embedding.weight = nn.Parameter(weight)
    model.set_input_embeddings(embedding)
    if isinstance(head, SplitHead):
        linear = nn.Linear(
            weight.shape[1], weight.shape[0], bias=False, dtype=weight.dtype, device=weight.device
        )
        linear.weight = (
            embedding.weight
            if tied
            else nn.Parameter(torch.cat([head.base_weight.detach(), head.sid_weight.detach()]))
        )
        model.set_output_embeddings(linear)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
