"""Top-K items of a type by beam search over the trie: open token forced, then one trie level per step.

Each step gathers only each beam's candidate window (the level's codebook block), masks it by the child
bitmap, takes top-k over beams x window per request, and reorders the KV cache with the source-beam
index. Beams over a trie are distinct prefixes, so the final beams are distinct items. The close token
is implied and never fed: no forward pass after the last level.

Scores (`score_mode`):
- `"full"` (default, HF's and STATIC's semantics): the sum over the item's code tokens of
  `log_softmax(logits over the full vocabulary)`, i.e. the model's own log-probability of the span
  given the prompt and the forced open token. Comparable across types and with unconstrained decoding.
- `"allowed"`: each level renormalised over the allowed children only, so the scores of all items of
  the request sum to 1 in probability space (a distribution over the catalog, given that an item of this
  type is named).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence

import torch

from neo.decoding.filters import ItemFilters, request_bits
from neo.decoding.fusion import FusionBatch
from neo.decoding.trie import ItemTrie

SCORE_MODES = ("full", "allowed")


@dataclasses.dataclass(frozen=True)
class ItemHit:
    """One recommended item: its id, type, score (see the module docstring) and SID codes."""

    item_id: str
    entity_type: str
    score: float
    codes: tuple[int, ...]


def beam_search_items(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    trie: ItemTrie,
    entity_types: Sequence[str],
    k: int,
    beam_width: int = 30,
    exclude: Sequence[Sequence[str]] | None = None,
    filters: ItemFilters | Sequence[ItemFilters | None] | None = None,
    score_mode: str = "full",
    prior: FusionBatch | None = None,
) -> list[list[ItemHit]]:
    """The best `k` distinct items of `entity_types[i]` for each (left-padded) prompt `input_ids[i]`.

    `exclude[i]` lists item ids request i must not receive (history, items already shown); `filters`
    is one `ItemFilters` for every request or one per request. `prior` (`ItemPrior.fusion`) adds
    `weight[i] * log q(item)` to request i's scores, token by token (`neo.decoding.prior`). Works with
    any HF causal LM that returns `logits` and a `past_key_values` cache. Fewer than `k` hits come back
    only when fewer items remain.
    """
    batch = input_ids.shape[0]
    if len(entity_types) != batch:
        raise ValueError(f"entity_types has {len(entity_types)} entries for {batch} prompts")
    if not 1 <= k <= beam_width:
        raise ValueError(f"k must be between 1 and beam_width={beam_width}, got {k}")
    if score_mode not in SCORE_MODES:
        raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {score_mode!r}")
    if prior is not None and (prior.batch_size, prior.width) != (batch, trie.n_nodes + trie.n_leaves):
        raise ValueError(
            f"prior covers {prior.batch_size} requests x {prior.width} positions, expected {batch} x "
            f"{trie.n_nodes + trie.n_leaves} (requests x trie nodes + leaves)"
        )
    if exclude is not None and len(exclude) != batch:
        raise ValueError(f"exclude has {len(exclude)} lists for {batch} prompts")
    per_request = list(filters) if isinstance(filters, Sequence) else [filters] * batch
    if len(per_request) != batch:
        raise ValueError(f"filters has {len(per_request)} entries for {batch} prompts")
    device = input_ids.device
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("prompts must be left-padded (attention_mask[:, -1] must be 1 for every row)")
    type_index = torch.tensor([trie.type_index(t) for t in entity_types], device=device)

    tables, table_of_request = [trie.alive_bits], []
    for i, entity_type in enumerate(entity_types):
        bits = request_bits(trie, entity_type, per_request[i], exclude[i] if exclude is not None else ())
        table_of_request.append(0 if bits is None else len(tables))
        if bits is not None:
            tables.append(bits)
    all_bits = torch.cat(tables) if len(tables) > 1 else tables[0]

    # prompt + forced open token, once per request; then every request fans out to `beam_width` beams
    input_ids = torch.cat([input_ids, trie.open_ids[type_index].unsqueeze(1)], dim=1)
    attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
    positions = (attention_mask.long().cumsum(1) - 1).clamp(min=0)
    logits, cache = _forward(model, input_ids, attention_mask, positions, None)
    fan_out = torch.arange(batch, device=device).repeat_interleave(beam_width)
    cache = _reorder(cache, fan_out)
    logits = logits[fan_out]
    attention_mask = attention_mask[fan_out]
    next_position = positions[fan_out, -1] + 1

    rows = batch * beam_width
    row_type = type_index[fan_out]
    row_table = torch.tensor(table_of_request, device=device)[fan_out]
    node = trie.type_root[row_type]
    scores = torch.full((batch, beam_width), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live beam per request until the first expansion
    n_levels = trie.n_levels[type_index]
    max_levels = max(trie.vocab.block(t).levels for t in entity_types)
    window = torch.arange(trie.window, device=device)
    shifts = torch.arange(32, device=device)
    for level in range(max_levels):
        live = (level < n_levels)[fan_out]  # requests whose type has this level
        start = trie.level_start[row_type, min(level, trie.level_start.shape[1] - 1)]
        candidate_logits = logits.gather(
            1, (start.unsqueeze(1) + window).clamp(max=logits.shape[1] - 1)
        ).float()
        # rows past their type's last level hold a leaf id, which may exceed the node count: they read
        # any valid row (their candidates are replaced by `keep` below, their node is kept as it is)
        lookup = row_table * trie.n_nodes + node.clamp(max=trie.n_nodes - 1)
        allowed = (all_bits[lookup].long().unsqueeze(2) >> shifts) & 1
        allowed = allowed.view(rows, trie.window).bool()
        if score_mode == "full":
            log_probs = candidate_logits - torch.logsumexp(logits.float(), dim=1, keepdim=True)
            log_probs = log_probs.masked_fill(~allowed, float("-inf"))
        else:
            log_probs = torch.log_softmax(candidate_logits.masked_fill(~allowed, float("-inf")), dim=1)
        if prior is not None:
            log_probs = log_probs + _prior_log_probs(trie, prior, fan_out, node, window)
        # a request past its last level keeps its beams: candidate 0 of each beam carries its score
        keep = torch.full_like(log_probs, float("-inf"))
        keep[:, 0] = 0.0
        log_probs = torch.where(live.unsqueeze(1), log_probs, keep)
        log_probs = log_probs.masked_fill(log_probs.isnan(), float("-inf"))  # dead beams with nothing allowed
        expanded = (scores.view(rows, 1) + log_probs).view(batch, beam_width * trie.window)
        scores, flat = expanded.topk(beam_width, dim=1)
        source = (flat // trie.window + torch.arange(batch, device=device).unsqueeze(1) * beam_width).view(
            rows
        )
        code = (flat % trie.window).view(rows)
        parent = node[source]
        node = torch.where(live[source], trie.child(parent.clamp(max=trie.n_nodes - 1), code), parent)
        if level + 1 == max_levels:
            break
        tokens = torch.where(live[source], start[source] + code, trie.close_ids[row_type])
        cache = _reorder(cache, source)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(rows, 1)], dim=1)
        logits, cache = _forward(
            model, tokens.unsqueeze(1), attention_mask, next_position.unsqueeze(1), cache
        )
        next_position = next_position + 1
    return _hits(trie, entity_types, node.view(batch, beam_width), scores, k)


def _prior_log_probs(
    trie: ItemTrie, prior: FusionBatch, fan_out: torch.Tensor, node: torch.Tensor, window: torch.Tensor
) -> torch.Tensor:
    """`weight * log(mass(child) / mass(node))` for every candidate code of every beam `[rows, window]`.

    Rows past their type's last level (holding a leaf id) get any finite value: their candidates are
    replaced by the caller. Codes that are not children read a clamped neighbour; they are masked already.
    """
    nodes, width = trie.n_nodes, trie.n_nodes + trie.n_leaves
    here = node.clamp(max=nodes - 1)
    child = trie.child(here.unsqueeze(1), window.unsqueeze(0))
    child = torch.where(trie.node_is_last[here].unsqueeze(1), nodes + child, child).clamp(max=width - 1)
    node_mass = prior.mass_at(fan_out, here)
    child_mass = prior.child_mass(fan_out, here, child, node_mass).clamp(min=1e-30)
    return prior.weight[fan_out].unsqueeze(1) * (child_mass.log() - node_mass.clamp(min=1e-30).log().unsqueeze(1))


def _hits(
    trie: ItemTrie, entity_types: Sequence[str], leaves: torch.Tensor, scores: torch.Tensor, k: int
) -> list[list[ItemHit]]:
    """Host-side results: the single sync of the search."""
    results = []
    for entity_type, request_leaves, request_scores in zip(
        entity_types, leaves.tolist(), scores.tolist(), strict=True
    ):
        hits = []
        for leaf, score in zip(request_leaves, request_scores, strict=True):
            if score == float("-inf") or len(hits) == k:
                break
            name, item_id, codes = trie.resolve(leaf)
            if name != entity_type:
                raise RuntimeError(f"beam search reached a {name!r} leaf for a {entity_type!r} request")
            hits.append(ItemHit(item_id, name, score, codes))
        results.append(hits)
    return results


def _forward(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    cache: object,
) -> tuple[torch.Tensor, object]:
    """Last-position logits and the updated cache of one forward pass of any HF causal LM."""
    accepted = _forward_parameters(type(model))
    cache_argument = "cache" if "cache" in accepted else "past_key_values"  # renamed in transformers 5.x
    kwargs = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        cache_argument: cache,
        "use_cache": True,
    }
    if "logits_to_keep" in accepted:  # skip the LM head on prompt positions
        kwargs["logits_to_keep"] = 1
    with torch.no_grad():
        output = model(**kwargs)
    # `cache` first: reading `past_key_values` at all warns of its deprecation in transformers 5.x
    new_cache = output["cache"] if "cache" in output else output.get("past_key_values")
    return output.logits[:, -1], new_cache


@functools.cache
def _forward_parameters(model_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def _reorder(cache: object, index: torch.Tensor) -> object:
    """Rows of a KV cache in `index` order: HF `Cache.reorder_cache` or a legacy tuple of (key, value)."""
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(index)
        return cache
    return tuple(tuple(t.index_select(0, index) for t in layer) for layer in cache)
