"""Grow a causal LM's vocabulary by the typed SID tokens and give the new rows a sensible start.

A new row initialised at random is a token the model has never seen anywhere in its space; the
`align` stage then spends most of its steps just moving rows into place. Starting each row where its
meaning already lives converges much faster:

- a code row (type t, level l, code c) starts at the mean text embedding of the titles of the items
  whose code at level l is c (the items "under" that code), so nearby codes start nearby;
- the open/close rows of a type start at the embedding of the type's name ("episode", "brand");
- unused padding slots of the 32-aligned layout start at the mean text row (never predicted: the
  decoder masks them);
- the rank level of a nested type (`neo.sids.nest`: an episode's rank in its show) also gets an
  ordinal code: rank r sits on circles of several frequencies at angle r * frequency, so rank r + 1 is
  rank r turned by one fixed rotation. "The next episode" is then one linear map for every rank,
  learned from the common ranks and right for the rare ones, not one pair to learn per rank (the
  code has a text row's norm but lies in random directions, so it adds no shared logit; see below);

every new row gets small Gaussian noise, so rows that share an initialisation (the open and the close
token) can still part ways. Rows are deliberately *not* rescaled to the norm of a text row: an average
of rows is shorter, and its logit is the average of those tokens' logits, so a new token can never
outscore the text the model would otherwise say. (Rescaled mean rows line up with the direction all
hidden states share: SmolLM2 then answered "What is the capital of France?" with SID tokens.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from neo.data import Catalog
from neo.sids.table import SIDTable
from neo.vocab import SIDVocab, attach_to_tokenizer

TITLE_TOKENS = 24
"""Title tokens averaged per item: enough to name it, short enough to keep init fast on big catalogs."""
ORDINAL_SCALE = 1.0
"""Norm of a rank row's ordinal code, in units of the mean text-row norm."""


def _mean_token_rows(weight: torch.Tensor, token_lists: list[list[int]]) -> torch.Tensor:
    """Row i is the mean of `weight` over token_lists[i] (the mean text row where the list is empty)."""
    flat = torch.tensor([t for tokens in token_lists for t in tokens], dtype=torch.long)
    owner = torch.repeat_interleave(
        torch.arange(len(token_lists)), torch.tensor([len(t) for t in token_lists], dtype=torch.long)
    )
    sums = torch.zeros(len(token_lists), weight.shape[1]).index_add_(0, owner, weight[flat])
    counts = torch.bincount(owner, minlength=len(token_lists)).unsqueeze(1)
    means = sums / counts.clamp(min=1)
    means[counts.squeeze(1) == 0] = weight.mean(0)
    return means


def ordinal_rows(count: int, dim: int, norm: float, generator: torch.Generator) -> torch.Tensor:
    """`count` rows of norm `norm`: row r = sum over frequencies w of cos(r w) u_w + sin(r w) v_w.

    The directions u_w, v_w are random orthonormal ones (no shared direction with the text rows); the
    periods run from 4 ranks to twice the count, so near ranks are near and far ranks stay apart.
    """
    frequencies = max(1, min(dim // 2, math.ceil(math.log2(max(count, 2))) + 1))
    periods = torch.logspace(math.log10(4.0), math.log10(max(2.0 * count, 4.0)), frequencies)
    angles = torch.arange(count, dtype=torch.float32)[:, None] * (2 * math.pi / periods)[None, :]
    circle = torch.cat([angles.cos(), angles.sin()], dim=1)  # [count, 2F], each row of norm sqrt(F)
    basis, _ = torch.linalg.qr(torch.randn(dim, 2 * frequencies, generator=generator))
    return circle @ basis.T * (norm / math.sqrt(frequencies))


def sid_row_init(
    weight: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    vocab: SIDVocab,
    titles: Mapping[str, str],
    tables: Mapping[str, SIDTable],
    noise_std: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Initial values of rows `[base_size, total_size)` given the text rows `weight[:base_size]`."""
    base = weight[: vocab.base_size].float()
    new = base.mean(0).repeat(vocab.total_size - vocab.base_size, 1)
    text_norm = float(base.norm(dim=1).mean())
    for entity_type, table in tables.items():
        block = vocab.block(entity_type)
        name_rows = _mean_token_rows(
            base, [tokenizer.encode(entity_type.replace("_", " "), add_special_tokens=False)]
        )
        new[block.open_id - vocab.base_size] = name_rows[0]
        new[block.close_id - vocab.base_size] = name_rows[0]
        if not len(table):
            continue
        encoded = tokenizer(
            [titles.get(item, "") for item in table.item_ids],
            add_special_tokens=False,
            truncation=True,
            max_length=TITLE_TOKENS,
        )["input_ids"]
        item_rows = _mean_token_rows(base, encoded)
        rank_level = table.levels - 1 if table.parent_type is not None else None
        for level, size in enumerate(block.codebook_sizes):
            codes = torch.from_numpy(table.codes[:, level]).long()
            sums = torch.zeros(size, base.shape[1]).index_add_(0, codes, item_rows)
            counts = torch.bincount(codes, minlength=size).unsqueeze(1)
            rows = torch.where(counts > 0, sums / counts.clamp(min=1), item_rows.mean(0))
            if level == rank_level:
                rows = rows + ordinal_rows(size, base.shape[1], text_norm * ORDINAL_SCALE, generator)
            start = block.level_starts[level] - vocab.base_size
            new[start : start + size] = rows
    noise = torch.randn(new.shape, generator=generator) * noise_std * base.std()
    return (new + noise).to(weight.dtype)


def adapt_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    vocab: SIDVocab,
    catalog: Catalog,
    tables: Mapping[str, SIDTable],
    noise_std: float = 0.1,
    seed: int = 0,
) -> None:
    """Attach the SID tokens to `tokenizer` and resize + initialise `model`'s embedding and head in place.

    Works for tied and untied heads. `vocab.base_size` must equal the tokenizer's length: models whose
    embedding matrix has spare rows beyond the tokenizer (padding to a multiple) lose those rows.
    """
    if len(tokenizer) not in (vocab.base_size, vocab.total_size):
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the SID vocabulary was planned on a base of "
            f"{vocab.base_size}; build the vocabulary from this tokenizer"
        )
    attach_to_tokenizer(tokenizer, vocab)
    generator = torch.Generator().manual_seed(seed)
    titles = dict(zip(catalog.items["id"], catalog.items["title"], strict=True))
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is model.get_input_embeddings().weight
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = None if tied or head is None else head.weight.detach().clone()
    model.resize_token_embeddings(vocab.total_size, mean_resizing=False)
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[vocab.base_size :] = sid_row_init(
            old_in, tokenizer, vocab, titles, tables, noise_std, generator
        )
        if old_out is not None:
            out = model.get_output_embeddings().weight
            out[vocab.base_size :] = sid_row_init(
                old_out, tokenizer, vocab, titles, tables, noise_std, generator
            )
    model.config.vocab_size = vocab.total_size
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    for config in (model.config, model.generation_config):
        if config is not None and getattr(config, "pad_token_id", None) is None:
            config.pad_token_id = tokenizer.pad_token_id
