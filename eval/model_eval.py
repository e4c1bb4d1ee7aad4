"""Evaluate a trained neo checkpoint task by task, with the same prompts it was trained on.

Every model call goes through the constrained decoder, so the validity metrics count what the
decoder really emitted (they must be 0). Steerability is measured on the *held-out* templates with
every entity type allowed, so the model itself must pick the requested type and format.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from neo.eval.metrics import (
    DEFAULT_KS,
    catalog_validity,
    flat_keys,
    latency_summary,
    steerability,
    term_overlap,
)
from tqdm.auto import tqdm

from neo.data.splits import Split, targets
from neo.decoding.beam import beam_search_items
from neo.decoding.generate import ItemSegment, MixedOutput, generate_mixed
from neo.decoding.lexical import LexicalPrior, LexicalSettings
from neo.decoding.prior import FusionSettings, ItemPrior
from neo.decoding.trie import ItemTrie
from neo.tasks.base import TaskContext
from neo.tasks.encoding import PromptEncoder
from neo.tasks.prompts import (
    REC_PROMPTS,
    continues_history,
    profile_prompt,
    rec_sequence_continuation,
    recommend_prompt,
    recsplain_prompt,
    search_prompt,
)
from neo.tasks.search import queries as search_queries

log = logging.getLogger(__name__)


@dataclass
class EvalSettings:
    """What to evaluate and how much of it (the defaults suit a CPU run on the demo world)."""

    ks: tuple[int, ...] = DEFAULT_KS
    max_users: int | None = 1000      # per target type; None = every test user
    max_queries: int | None = 500     # per target type
    beam_width: int = 30
    batch_size: int = 32
    max_history: int = 20             # most recent history lines in a prompt (as in training)
    steer_requests: int = 60          # per format, on held-out templates
    profile_users: int = 100
    max_new_tokens: int = 64
    latency_beams: tuple[int, ...] = (10, 30)
    seed: int = 0
    # "recommend": the recommend task's prompt; "sequence": continue the user's history in the
    # rec_sequence layout (for types that history lines hold), for models trained mostly on rec_sequence.
    rec_prompt: str = "recommend"
    # shallow fusion with the transition prior (`neo.decoding.prior`) in recommendation; weight 0 = off
    prior: FusionSettings = field(default_factory=FusionSettings)
    # shallow fusion with BM25 over the items' text in search (`neo.decoding.lexical`); weight 0 = off
    lexical: LexicalSettings = field(default_factory=LexicalSettings)

    @classmethod
    def from_config(cls, options: Mapping[str, Any] | None) -> EvalSettings:
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown eval settings {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        for key in ("ks", "latency_beams"):
            if key in options:
                options[key] = tuple(int(v) for v in options[key])
        options["prior"] = FusionSettings.from_config(options.get("prior"))
        options["lexical"] = LexicalSettings.from_config(options.get("lexical"))
        if options.get("rec_prompt", "recommend") not in REC_PROMPTS:
            raise ValueError(f"eval.settings.rec_prompt must be one of {REC_PROMPTS}, got {options['rec_prompt']!r}")
        return cls(**options)


@dataclass
class ModelEvaluator:
    """Runs one checkpoint over a split: recommendation, search, steerability, profiles, validity."""

    model: torch.nn.Module
    tokenizer: Any
    ctx: TaskContext
    trie: ItemTrie
    settings: EvalSettings
    prior: ItemPrior | None = None  # transition counts for fusion (used when settings.prior.weight > 0)
    lexical: LexicalPrior | None = None  # BM25 over item text for search fusion (settings.lexical.weight > 0)
    outputs: list[list[int]] = field(default_factory=list)  # every decoded answer, for the validity check

    def __post_init__(self) -> None:
        self.device = next(self.model.parameters()).device
        self.encoder = PromptEncoder(self.tokenizer, self.ctx.chat)

    @property
    def fuses(self) -> bool:
        """Whether recommendations add the transition prior (counts given and a weight above 0 somewhere)."""
        return self.prior is not None and self.settings.prior.active

    @property
    def fuses_search(self) -> bool:
        """Whether searches add the lexical prior (an index given and a weight above 0)."""
        return self.lexical is not None and self.settings.lexical.weight > 0

    # ----- plumbing -----------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder.batch(self.encoder.encode(prompts), self.device)

    def history(self, interactions: Sequence[Any]) -> list:
        return self.ctx.lines([x for x in interactions if x.item in self.ctx.span][-self.settings.max_history:])

    def sample(self, keys: Sequence[str], limit: int | None) -> list[str]:
        """A deterministic subset of at most `limit` keys, in sorted order."""
        return self.sample_rows(sorted(keys), limit)

    def sample_rows(self, rows: Sequence[Any], limit: int | None) -> list[Any]:
        """A deterministic subset of at most `limit` rows, in their original order."""
        if limit is None or len(rows) <= limit:
            return list(rows)
        picked = sorted(random.Random(self.settings.seed).sample(range(len(rows)), limit))
        return [rows[i] for i in picked]

    def top_items(self, prompts: Sequence[str], entity_types: Sequence[str], k: int,
                  beam_width: int | None = None, histories: Sequence[Sequence[Any]] | None = None,
                  queries: Sequence[str] | None = None) -> list[list[str]]:
        """Top-k item ids per prompt; recommendation prompts pass their `histories` for the transition
        prior, search prompts their `queries` for the lexical prior."""
        ids, mask = self.encode(prompts)
        prior = None
        if histories is not None and self.fuses:
            items = [[x.item for x in h] for h in histories]
            prior = self.prior.fusion(self.trie, items, list(entity_types), self.settings.prior)
        elif queries is not None and self.fuses_search:
            prior = self.lexical.fusion(self.trie, queries, list(entity_types), self.settings.lexical)
        with torch.inference_mode():
            hits = beam_search_items(self.model, ids, mask, self.trie, list(entity_types), k,
                                     beam_width=max(beam_width or self.settings.beam_width, k), prior=prior)
        return [[h.item_id for h in row] for row in hits]

    def generate(self, prompts: Sequence[str], allowed_types: Sequence[str], max_items: int | None = None
                 ) -> list[MixedOutput]:
        ids, mask = self.encode(prompts)
        with torch.inference_mode():
            out = generate_mixed(self.model, ids, mask, self.trie, list(allowed_types), self.settings.max_new_tokens,
                                 max_items=max_items, eos_token_id=self.encoder.stop_ids)
        self.outputs.extend(o.token_ids for o in out)
        return out

    def render(self, output: MixedOutput) -> str:
        """Decoded text with each item span shown as [type: title]."""
        parts = []
        for segment in output.segments:
            if isinstance(segment, ItemSegment):
                parts.append(f"[{segment.entity_type}: {self.ctx.title.get(segment.item_id, segment.item_id)}]")
            else:
                parts.append(self.tokenizer.decode(segment.token_ids, skip_special_tokens=True))
        return "".join(parts).strip()

    def _batches(self, rows: Sequence[Any], desc: str):
        size = self.settings.batch_size
        for start in tqdm(range(0, len(rows), size), desc=desc, leave=False):
            yield rows[start:start + size]

    # ----- tasks --------------------------------------------------------------------------------
    def rec_users(self, split: Split, entity_type: str, part: str = "test") -> dict[str, str]:
        """The (sampled) users evaluated for one target type, with their targets."""
        wanted = targets(self.ctx.catalog, split, part, entity_type)
        wanted = {u: t for u, t in wanted.items() if t in self.ctx.span}
        return {u: wanted[u] for u in self.sample(list(wanted), self.settings.max_users)}

    def rec_prompt(self, interactions: Sequence[Any], entity_type: str, k: int) -> str:
        """The recommendation prompt that `settings.rec_prompt` asks for, by the rule the API serves
        with (`neo.tasks.prompts.continues_history`)."""
        history = self.history(interactions)
        history_types = (self.ctx.type_of[x.item] for x in interactions if x.item in self.ctx.span)
        if continues_history(self.settings.rec_prompt, history_types, entity_type):
            return rec_sequence_continuation(history, chat=self.ctx.chat, style=self.ctx.style)
        return recommend_prompt(history, entity_type, k, "ids", chat=self.ctx.chat, style=self.ctx.style)

    def rec_ranks(self, split: Split, entity_type: str, users: Mapping[str, str], part: str = "test",
                  fused: bool = True) -> dict[str, int]:
        """Each user's 0-based rank of their target item (2^30 when it is not in the top max(ks));
        `fused=False` ranks with the model alone (no transition prior)."""
        k = max(self.settings.ks)
        ranks: dict[str, int] = {}
        for batch in self._batches(list(users), f"rec {entity_type}"):
            histories = [split.history(part, u) for u in batch]
            prompts = [self.rec_prompt(h, entity_type, k) for h in histories]
            ranked_lists = self.top_items(prompts, [entity_type] * len(batch), k,
                                          histories=histories if fused else None)
            for user, ranked in zip(batch, ranked_lists, strict=True):
                ranks[user] = ranked.index(users[user]) if users[user] in ranked else 1 << 30
        return ranks

    def search_ranked(self, entity_type: str, queries: Sequence[Any], fused: bool = True) -> list[list[str]]:
        """Each query's top max(ks) item ids, in query order; `fused=False` ranks with the model alone (no
        lexical prior)."""
        k = max(self.settings.ks)
        ranked: list[list[str]] = []
        for batch in self._batches(list(queries), f"search {entity_type}"):
            prompts = [search_prompt(q.text, entity_type, k, "ids", chat=self.ctx.chat) for q in batch]
            ranked += self.top_items(prompts, [entity_type] * len(batch), k,
                                     queries=[q.text for q in batch] if fused else None)
        return ranked

    def steering(self, split: Split, types: Sequence[str]) -> dict[str, float]:
        """Held-out templates, every type allowed: does the model produce the requested type/format/count?"""
        rng = random.Random(self.settings.seed)
        users = self.sample(list(split.test), self.settings.steer_requests)
        requested, produced, counts, format_ok = [], [], [], []
        for fmt in ("ids", "mixed"):
            for batch in self._batches(users, f"steer {fmt}"):
                asked = [(rng.choice(list(types)), rng.choice((1, 3))) for _ in batch]
                prompts = [recommend_prompt(self.history(split.history("test", u)), t, k, fmt, chat=self.ctx.chat,
                                            style=self.ctx.style, template=rng.randrange(1 << 16), pool="heldout")
                           for u, (t, k) in zip(batch, asked, strict=True)]
                for (t, k), out in zip(asked, self.generate(prompts, list(types)), strict=True):
                    requested.append(t)
                    counts.append(k)
                    produced.append([i.entity_type for i in out.items])
                    text = self.tokenizer.decode([tok for s in out.segments if not isinstance(s, ItemSegment)
                                                  for tok in s.token_ids], skip_special_tokens=True)
                    has_text = any(ch.isalpha() for ch in text)
                    format_ok.append(bool(out.items) and (has_text if fmt == "mixed" else not has_text))
        scores = steerability(requested, produced, counts, format_ok)
        return {name.replace("_accuracy", "_compliance"): value for name, value in scores.items()}

    def profiles(self, split: Split) -> dict[str, float]:
        """Generated profiles vs ground truth: catalog profile topics where logged, else derived terms."""
        profiles = self.ctx.catalog.profiles
        truth: dict[str, list[str]] = {}
        if profiles is not None:
            truth = {u: list(t) for u, t in zip(profiles["user"], profiles["topics"], strict=True) if t}
        users = self.sample([u for u in split.test if u in truth] if truth else list(split.test),
                            self.settings.profile_users)
        if not truth:
            from neo.tasks.profile import derived_profile

            truth = {u: [p.strip() for p in derived_profile(self.ctx, split.history("test", u)).split(",")]
                     for u in users}
        predicted, terms = [], truth_terms(truth)
        for batch in self._batches(users, "profiles"):
            prompts = [profile_prompt(self.history(split.history("test", u)), chat=self.ctx.chat, style=self.ctx.style)
                       for u in batch]
            for out in self.generate(prompts, [], max_items=0):
                text = self.render(out).lower()
                predicted.append([t for t in terms if t.lower() in text])
        return term_overlap(predicted, [truth[u] for u in users])

    def latency(self, split: Split, entity_type: str) -> dict[str, float]:
        users = self.sample(list(split.test), 16)
        out: dict[str, float] = {}
        for beam in self.settings.latency_beams:
            seconds = []
            for user in users:
                history = split.history("test", user)
                prompt = recommend_prompt(self.history(history), entity_type, 10, "ids",
                                          chat=self.ctx.chat, style=self.ctx.style)
                started = time.perf_counter()
                self.top_items([prompt], [entity_type], 10, beam_width=beam, histories=[history])
                seconds.append(time.perf_counter() - started)
            out.update(flat_keys(f"beam{beam}", latency_summary(seconds)))
        return out

    def examples(self, split: Split, types: Sequence[str]) -> dict[str, str]:
        """One generation per task for the report."""
        user = self.sample(list(split.test), 1)[0]
        interactions = split.history("test", user)
        history = self.history(interactions)
        target = types[0]
        out = {}
        top = self.top_items([recommend_prompt(history, target, 5, "ids", chat=self.ctx.chat, style=self.ctx.style)],
                             [target], 5, histories=[interactions])[0]
        out[f"recommend {target} (top 5)"] = "; ".join(self.ctx.title[i] for i in top)
        explained = self.generate([recsplain_prompt(history, target, chat=self.ctx.chat, style=self.ctx.style)],
                                  [target], max_items=1)[0]
        out["recsplain"] = self.render(explained)
        profile = self.generate([profile_prompt(history, chat=self.ctx.chat, style=self.ctx.style)], [], 0)[0]
        out["profile"] = self.render(profile)
        queries = search_queries(self.ctx.catalog, "test")
        if queries:
            query = queries[0]
            found = self.top_items([search_prompt(query.text, query.type, 5, "ids", chat=self.ctx.chat)],
                                   [query.type], 5, queries=[query.text])[0]
            out[f"search {query.type}: {query.text!r}"] = "; ".join(self.ctx.title[i] for i in found)
        out["history"] = "; ".join(self.ctx.title[x.item] for x in split.history("test", user)[-8:])
        return out

    def validity(self) -> dict[str, float]:
        report = catalog_validity(self.outputs, self.ctx.vocab, self.ctx.tables)
        return {"validity/invalid_items": report.unknown_items + report.malformed_spans,
                "validity/sid_outside_span": report.stray_sid_tokens, "validity/spans": report.spans}


def truth_terms(truth: Mapping[str, Sequence[str]]) -> list[str]:
    """Every ground-truth term, longest first (so 'true crime' is matched before 'crime')."""
    return sorted({t for terms in truth.values() for t in terms}, key=len, reverse=True)
