"""`neo.Neo`: the prompt-steered inference API over a trained checkpoint.

One model answers four kinds of request, each a prompt built by `neo.tasks.prompts` (the same builders
the training examples came from, so inference sees exactly the training format) and decoded by
`neo.decoding` (so every item the model names exists in the catalog):

- `recommend`: a user's history -> top-k items of a target type (item beam search over the trie);
- `search`: a text query -> top-k items of a target type;
- `describe_user`: a history -> a free-text profile that may mention items;
- `generate`: any prompt -> mixed text and item references.

Each has a `*_batch` form taking request objects; the HTTP server's micro-batcher calls `run_batch`,
which groups a mixed batch by kind. Inputs are checked before anything runs (`validate`), so one bad
request is refused with a `NeoInputError` that names the field, and never poisons a batch.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neo.data.catalog import Catalog
from neo.decoding.filters import ItemFilters
from neo.decoding.fusion import FusionBatch, combine
from neo.decoding.lexical import INDEX_FILE, IndexFit, LexicalPrior, LexicalSettings
from neo.decoding.prior import PRIOR_FILE, FusionSettings, ItemPrior
from neo.decoding.trie import ItemTrie
from neo.io import write_jsonl
from neo.sids.table import SIDS_DIR, SIDTable, load_tables
from neo.tasks.encoding import PromptEncoder
from neo.tasks.pipeline import history_style
from neo.tasks.prompts import (
    DEFAULT_STYLE,
    FAMILIARITY,
    REC_PROMPTS,
    ChatFormat,
    HistoryLine,
    HistoryStyle,
    continues_history,
    generic_prompt,
    profile_prompt,
    rec_sequence_continuation,
    recommend_prompt,
    search_prompt,
)
from neo.vocab import SIDVocab

log = logging.getLogger(__name__)

NEO_META_FILE = "neo.json"
CHECKPOINT_CATALOG_DIR = "catalog"


class NeoInputError(ValueError):
    """A request field is invalid; `field` is its dotted path (e.g. `history[3]`) for error responses."""

    def __init__(self, field_path: str, message: str):
        self.field = field_path
        self.message = message
        super().__init__(f"{field_path}: {message}")


@dataclass(frozen=True)
class Limits:
    """Size limits on requests: they bound latency and memory, and the server publishes them in its schema."""

    max_history: int = 256
    max_k: int = 100
    max_exclude: int = 1024
    max_query_chars: int = 1000
    max_prompt_chars: int = 8000
    max_new_tokens: int = 256
    max_id_chars: int = 256
    max_new_items: int = 1000

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> Limits:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown limit(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: int(v) for k, v in raw.items()})


# ----- requests ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryEntry:
    """One past interaction with the time (seconds) and context (e.g. surface) the prompt can show.

    A bare item id in a history means "no time, no context"; training prompts show the day gaps
    and the context keys of the checkpoint's history style, so passing them matches training best.
    """

    item: str
    timestamp: float | None = None
    context: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RecommendRequest:
    history: Sequence[str | HistoryEntry]
    target_type: str
    k: int = 10
    discovery: str | None = None
    exclude: Sequence[str] | None = None
    filters: ItemFilters | None = None
    prior_weight: float | None = None  # the transition prior's weight for this request; None: the model's


@dataclass(frozen=True)
class SearchRequest:
    query: str
    target_type: str
    k: int = 10
    prior_weight: float | None = None  # the lexical (BM25) prior's weight for this search; None: the model's


@dataclass(frozen=True)
class DescribeUserRequest:
    history: Sequence[str | HistoryEntry]
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    max_new_tokens: int | None = None
    allowed_types: Sequence[str] | None = None
    filters: ItemFilters | None = None


Request = RecommendRequest | SearchRequest | DescribeUserRequest | GenerateRequest


@dataclass(frozen=True)
class NewItem:
    """An item to add to a loaded catalog without retraining (`Neo.extend_catalog`).

    A nested type (a show's episode) needs `parent`; the parent's new children take the next free ranks in
    `order_key` order (give one for every item or for none). A quantised type needs `embedding`, made the
    way the type's SIDs were built: the checkpoint's fitted codebooks turn it into a code.
    """

    id: str
    title: str
    parent: str | None = None
    order_key: float | str | None = None
    embedding: Sequence[float] | None = None


# ----- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemResult:
    """One catalog item the model named: its record, its SID and (for ranked results) its score."""

    item_id: str
    entity_type: str
    title: str
    sid: str
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Segment:
    """A piece of mixed output: free text, or an item reference resolved to its catalog record."""

    text: str
    item: ItemResult | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.item is None:
            return {"kind": "text", "text": self.text}
        return {"kind": "item", "text": self.text, "item": self.item.to_dict()}


@dataclass(frozen=True)
class TextResult:
    """Mixed output: `text` renders item references as their titles; `segments` keep the structure."""

    text: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def items(self) -> list[ItemResult]:
        return [s.item for s in self.segments if s.item is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
            "items": [i.to_dict() for i in self.items],
        }


# ----- checkpoint contents -----------------------------------------------------------------------
def read_checkpoint_meta(directory: Path) -> dict[str, Any]:
    path = directory / NEO_META_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: missing; a neo checkpoint carries neo.json (dataset, stage)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc.msg})") from None


def find_catalog(directory: Path, meta: Mapping[str, Any]) -> Path:
    """The dataset a checkpoint answers about: its own `catalog/` copy, else the training config's data path.

    A self-contained checkpoint (one that carries `catalog/`) keeps working when moved to another
    machine; `neo.json`'s `config.data.path` (written by `neo run train`) is the convenient default
    for checkpoints used where they were trained.
    """
    embedded = directory / CHECKPOINT_CATALOG_DIR
    if (embedded / "dataset.yaml").exists():
        return embedded
    recorded = _nested(meta, "config", "data", "path")
    if recorded and (Path(recorded) / "dataset.yaml").exists():
        return Path(recorded)
    raise FileNotFoundError(
        f"{directory}: no catalog found: expected {embedded}/dataset.yaml or a dataset directory at "
        f"neo.json's config.data.path (got {recorded!r}); pass catalog=<dataset dir> to Neo.from_pretrained"
    )


def _vector(value: Any) -> Any:
    """`value` as a float32 numpy array (a string or None gives a 0-d one), or None when numpy cannot
    read it as numbers."""
    try:
        with np.errstate(over="ignore"):  # out-of-range numbers become inf, which the caller refuses
            return np.asarray(value, np.float32)
    except (TypeError, ValueError):
        return None


def _item_id(entry: str | HistoryEntry) -> str:
    return entry.item if isinstance(entry, HistoryEntry) else entry


def _nested(raw: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(raw, Mapping):
            return None
        raw = raw.get(key)
    return raw


def item_records(catalog: Catalog, tables: Mapping[str, SIDTable]) -> dict[str, tuple[str, str]]:
    """Item id -> (type, title) for every item with a SID: the only items the model can read or name."""
    type_of = {item: t for t, table in tables.items() for item in table.item_ids}
    records = {}
    for item_id, title in zip(catalog.items["id"], catalog.items["title"], strict=True):
        entity_type = type_of.get(item_id)
        if entity_type is not None:
            records[item_id] = (entity_type, title)
    missing = len(type_of) - len(records)
    if missing:
        example = next(i for i in type_of if i not in records)
        raise ValueError(
            f"{catalog.root}: {missing} item(s) of the SID tables are not in the catalog "
            f"(e.g. {example!r}); was the checkpoint trained on another dataset?"
        )
    return records


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return None
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype {dtype!r} is not a torch dtype (e.g. float32, bfloat16, float16)")
    return resolved


def _check_k(k: Any, limits: Limits) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.max_k:
        raise NeoInputError("k", f"must be an integer in [1, {limits.max_k}], got {k!r}")


def _check_max_new_tokens(value: Any, limits: Limits) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limits.max_new_tokens
    ):
        raise NeoInputError(
            "max_new_tokens", f"must be an integer in [1, {limits.max_new_tokens}], got {value!r}"
        )


def _check_prior_weight(value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf")
    ):
        raise NeoInputError("prior_weight", f"must be a number >= 0 or null, got {value!r}")


def _check_text(name: str, value: Any, max_chars: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise NeoInputError(name, "must be a non-empty string")
    if len(value) > max_chars:
        raise NeoInputError(name, f"is {len(value)} characters; the limit is {max_chars}")


class Neo:
    """A loaded checkpoint: model, tokenizer, SID vocabulary and tables, item trie and item records."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        vocab: SIDVocab,
        tables: Mapping[str, SIDTable],
        records: Mapping[str, tuple[str, str]],
        *,
        device: str | torch.device = "cpu",
        chat: ChatFormat | None = None,
        style: HistoryStyle = DEFAULT_STYLE,
        prompt_history: Mapping[str, int] | None = None,
        limits: Limits | None = None,
        beam_width: int = 30,
        max_new_tokens: int = 128,
        rec_prompt: str = "recommend",
        max_batch_size: int = 32,
        sids_dir: str | os.PathLike | None = None,
        additions: str | os.PathLike | None = None,
        prior: ItemPrior | None = None,
        fusion: FusionSettings | None = None,
        lexical: LexicalPrior | None = None,
        lexical_fusion: LexicalSettings | None = None,
    ):
        if rec_prompt not in REC_PROMPTS:
            raise ValueError(f"rec_prompt must be one of {REC_PROMPTS}, got {rec_prompt!r}")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if len(tokenizer) != vocab.total_size:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens but the SID vocabulary needs "
                f"{vocab.total_size}; the checkpoint's tokenizer and neo_vocab.json disagree"
            )
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"  # decoder-only batches: every row's last token is real
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Prompts are rendered and tokenised exactly as neo.tasks.pipeline did for training (and as
        # neo.eval does): the tokenizer's chat format, the training history style and length, a leading
        # BOS only for tokenizers whose own encoding starts with one, and the chat end-of-turn as a stop.
        self.chat = chat or ChatFormat.from_tokenizer(tokenizer)
        self.style = style
        self.prompt_history = dict(prompt_history or {})
        self.rec_prompt = rec_prompt
        self.encoder = PromptEncoder(tokenizer, self.chat)
        self.vocab = vocab
        self.tables = dict(tables)
        self.records = dict(records)
        self.device = torch.device(device)
        self.limits = limits or Limits()
        self.beam_width = beam_width
        # Recommendations fuse the model's scores with counted transitions when the checkpoint has them.
        self.prior = prior
        self.fusion = fusion or FusionSettings()
        # Searches fuse the model's scores with BM25 over the items' text when an index is given; items
        # added later join it with their titles.
        self.lexical: LexicalPrior | None = None  # set after the replay below: one index build per type
        self.lexical_fusion = lexical_fusion or LexicalSettings()
        # Requests per decoder call: a beam search holds batch x beam rows of logits and KV cache, so
        # a caller's thousand-request batch is decoded in slices instead of all at once.
        self.max_batch_size = max_batch_size
        self.max_new_tokens = min(max_new_tokens, self.limits.max_new_tokens)
        # Where the fitted codebooks are (`extend_catalog` for quantised types); None: not known.
        self.sids_dir = Path(sids_dir) if sids_dir is not None else None
        self._catalog_lock = threading.Lock()  # one catalog change at a time; requests never wait on it
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        # Items added since training (add_items / extend_catalog), kept in a JSONL file when one is given:
        # replayed here, rewritten atomically after each accepted addition, so a restart forgets nothing.
        self.additions_path = Path(additions) if additions is not None else None
        self._additions: list[dict[str, Any]] = []
        self._fresh: frozenset[str] = frozenset()  # ids added since training: the prior cannot weigh them
        if self.additions_path is not None and self.additions_path.exists():
            self._replay_additions(self.additions_path)
        self.trie = ItemTrie.build(vocab, self.tables, self.device)  # once, with any replayed additions
        if lexical is not None:
            replayed: dict[str, dict[str, str]] = {}
            for entry in self._additions:
                replayed.setdefault(entry["entity_type"], {}).update({i["id"]: i["title"] for i in entry["items"]})
            for entity_type, titles in replayed.items():
                lexical = lexical.with_items(entity_type, titles)
        self.lexical = lexical

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        catalog: str | os.PathLike | None = None,
        limits: Limits | None = None,
        beam_width: int = 30,
        max_new_tokens: int = 128,
        rec_prompt: str | None = None,
        max_batch_size: int = 32,
        additions: str | os.PathLike | None = None,
        fusion: FusionSettings | None = None,
        lexical_fusion: LexicalSettings | None = None,
    ) -> Neo:
        """Load a checkpoint directory (see docs/serving.md for what it must contain).

        `rec_prompt` (recommend | sequence): how recommendations are asked; None takes the layout the
        checkpoint's pipeline was evaluated with (`eval.settings.rec_prompt`), else `recommend`.
        `fusion`: settings of the transition prior (`item_prior.json`, written by training) that
        recommendations fuse with; None takes the checkpoint's `eval.settings.prior`, else the defaults.
        `lexical_fusion`: settings of the BM25 prior over the catalog's item text that searches fuse
        with; None takes the checkpoint's `eval.settings.lexical`, else the defaults.
        `additions`: a JSONL file that keeps the items added after training (`add_items`,
        `extend_catalog`): replayed now if it exists, and rewritten after every accepted addition.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: not a checkpoint directory")
        meta = read_checkpoint_meta(directory)
        vocab = SIDVocab.load(directory)
        tables = load_tables(directory / SIDS_DIR)
        unknown = sorted(set(tables) - set(vocab.type_names))
        if unknown:
            raise ValueError(
                f"{directory / SIDS_DIR}: tables for types {unknown} not in neo_vocab.json "
                f"(types {vocab.type_names})"
            )
        catalog_root = Path(catalog) if catalog else find_catalog(directory, meta)
        catalog_data = Catalog.load(catalog_root)
        records = item_records(catalog_data, tables)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=resolve_dtype(dtype)).to(device)
        tasks_cfg = _nested(meta, "config", "tasks") or {}
        prompt_history = {
            task: int(n)
            for task in ("recommend", "rec_sequence", "profile")
            if (n := _nested(tasks_cfg, "tasks", task, "max_history"))
        }
        if rec_prompt is None:
            rec_prompt = _nested(meta, "config", "eval", "settings", "rec_prompt") or "recommend"
        if fusion is None:
            fusion = FusionSettings.from_config(_nested(meta, "config", "eval", "settings", "prior"))
        if lexical_fusion is None:
            lexical_fusion = LexicalSettings.from_config(_nested(meta, "config", "eval", "settings", "lexical"))
        prior_path = directory / PRIOR_FILE
        # the title weight training fit for the search index; checkpoints from before it was saved count it once
        fitted = (directory / INDEX_FILE).exists()
        title_weight = IndexFit.load(directory / INDEX_FILE).title_weight if fitted else 1
        log.info("search index: each title counted %d time(s)%s", title_weight,
                 "" if fitted else f" (no {INDEX_FILE} in the checkpoint)")
        return cls(
            model,
            tokenizer,
            vocab,
            tables,
            records,
            device=device,
            style=history_style(catalog_data, tasks_cfg.get("history") or {}),
            prompt_history=prompt_history,
            limits=limits,
            beam_width=beam_width,
            max_new_tokens=max_new_tokens,
            rec_prompt=rec_prompt,
            max_batch_size=max_batch_size,
            sids_dir=directory / SIDS_DIR,
            additions=additions,
            prior=ItemPrior.load(prior_path) if prior_path.exists() else None,
            fusion=fusion,
            lexical=LexicalPrior.from_catalog(catalog_data, list(tables), title_weight=title_weight),
            lexical_fusion=lexical_fusion,
        )

    # ----- catalog ---------------------------------------------------------------------------------
    @property
    def entity_types(self) -> list[str]:
        return list(self.tables)

    def catalog_summary(self) -> dict[str, int]:
        """Entity type -> number of items the model can recommend."""
        return {t: len(table) for t, table in self.tables.items()}

    def add_items(self, table: SIDTable, titles: Mapping[str, str]) -> list[str]:
        """Make new items nameable without retraining; returns their ids.

        `table` is a type's table extended with the new items (`neo.sids.build.encode_new_items`, or
        `encode_new_children` for a nested type such as a show's new episode); `titles` gives each new
        item's title. A type's SID tokens are shared by all its items, so the model can already write the
        new codes: only the trie and the item records change. Existing items must keep their codes.
        """
        with self._catalog_lock:
            return self._add_table(table, titles)

    def _add_table(self, table: SIDTable, titles: Mapping[str, str]) -> list[str]:
        """Check `table` (the current one plus new rows), then swap it in; with an additions file, the
        file is rewritten first, so an addition it could not record is not made either."""
        entry = self._checked_addition(table, titles)
        trie = ItemTrie.build(self.vocab, {**self.tables, table.entity_type: table}, self.device)
        if entry["items"] and self.additions_path is not None:
            write_jsonl(self.additions_path, [*self._additions, entry])
        # Records first, trie last: a request running meanwhile either cannot reach a new item yet or
        # finds its record.
        self._apply_addition(table, entry)
        self.trie = trie
        return [item["id"] for item in entry["items"]]

    def _checked_addition(self, table: SIDTable, titles: Mapping[str, str]) -> dict[str, Any]:
        """Check `table` (the current one plus new rows) and the new rows' titles; returns the addition as
        the additions file records it."""
        entity_type = table.entity_type
        self._check_type("table.entity_type", entity_type)
        current = self.tables[entity_type]
        old = len(current)
        unchanged = (
            table.codebook_sizes == current.codebook_sizes
            and table.item_ids[:old] == current.item_ids
            and table.codes[:old].tolist() == current.codes.tolist()
        )
        if not unchanged:
            raise ValueError(
                f"the new {entity_type!r} table must keep the codebook sizes and start with the current "
                f"{old} items and their codes, unchanged; extend it with encode_new_items / "
                "encode_new_children"
            )
        new_ids = table.item_ids[old:]
        taken = [i for i in new_ids if i in self.records]
        if taken:
            raise ValueError(f"item id(s) already in the catalog: {taken[:5]}")
        if len(set(new_ids)) != len(new_ids) or len({tuple(c) for c in table.codes.tolist()}) != len(table):
            raise ValueError(f"new {entity_type!r} items need distinct ids and codes no other item has")
        untitled = [i for i in new_ids if not isinstance(titles.get(i), str)]
        if untitled:
            raise ValueError(f"titles: no title (a string) for new item(s) {untitled[:5]}")
        return {
            "entity_type": entity_type,
            "items": [
                {"id": i, "title": titles[i], "codes": [int(c) for c in codes]}
                for i, codes in zip(new_ids, table.codes[old:], strict=True)
            ],
        }

    def _apply_addition(self, table: SIDTable, entry: Mapping[str, Any]) -> None:
        """Swap in the checked table and the new items' records (the caller sets the trie)."""
        if entry["items"]:
            self._additions.append(dict(entry))
            self._fresh = self._fresh | {item["id"] for item in entry["items"]}
        entity_type = table.entity_type
        if self.lexical is not None and entry["items"]:
            self.lexical = self.lexical.with_items(entity_type, {item["id"]: item["title"] for item in entry["items"]})
        self.records = {**self.records, **{item["id"]: (entity_type, item["title"]) for item in entry["items"]}}
        self.tables = {**self.tables, entity_type: table}

    def _replay_additions(self, path: Path) -> None:
        """Re-add the items of an additions file, line by line, with their recorded codes (before the
        constructor builds the trie, so a file of many additions costs one build, not one per line)."""
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
                entity_type, items = record["entity_type"], record["items"]
                ids = [item["id"] for item in items]
                codes = np.asarray([item["codes"] for item in items], dtype=np.int64)
                titles = {item["id"]: item["title"] for item in items}
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{where}: expected {{\"entity_type\": ..., \"items\": [{{\"id\", \"title\", \"codes\"}}]}} "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            if entity_type not in self.tables:
                raise ValueError(f"{where}: unknown entity type {entity_type!r}; valid types: {self.entity_types}")
            table = self.tables[entity_type]
            if codes.ndim != 2 or codes.shape[1] != table.levels:
                raise ValueError(f"{where}: every item needs {table.levels} codes (the {entity_type!r} levels)")
            try:
                extended = table.with_items(ids, codes)  # SIDTable refuses codes outside the codebooks
                entry = self._checked_addition(extended, titles)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
            self._apply_addition(extended, entry)  # the constructor builds the trie once, after the replay
        added = sum(len(entry["items"]) for entry in self._additions)
        log.info("%s: %d items added after training, restored", path, added)

    def extend_catalog(self, entity_type: str, items: Sequence[NewItem]) -> list[ItemResult]:
        """Give new items of `entity_type` SIDs and make them nameable at once; returns their records.

        The codes come from the checkpoint itself: a nested type's item takes its parent's code and the
        parent's next free rank (`neo.sids.build.encode_new_children`), a quantised type's item the code of
        its embedding under the fitted codebooks (`encode_new_items`). Existing items keep their codes, and
        a refused call changes nothing. The additions live in this process unless it was loaded with an
        additions file (`from_pretrained(additions=...)`, the server's `additions`), which keeps them
        across restarts.
        """
        with self._catalog_lock:
            self._check_type("entity_type", entity_type)
            self._check_new_items(items)
            if len(items) > self.limits.max_new_items:
                raise NeoInputError("items", f"has {len(items)} items; the limit is {self.limits.max_new_items}")
            table = self.tables[entity_type]
            ids = [item.id for item in items]
            try:
                if table.parent_type is not None:
                    extended = self._children_table(table, items)
                else:
                    extended = self._quantised_table(table, items)
            except NeoInputError:
                raise
            except ValueError as exc:  # e.g. a parent whose rank level is full
                raise NeoInputError("items", str(exc)) from None
            self._add_table(extended, {item.id: item.title for item in items})
            return [self.item(i) for i in ids]

    def _check_new_items(self, items: Sequence[NewItem]) -> None:
        if isinstance(items, str | NewItem) or not isinstance(items, Sequence) or not items:
            raise NeoInputError("items", "must be a non-empty list of new items")
        seen: set[str] = set()
        for n, item in enumerate(items):
            if not isinstance(item, NewItem):
                raise NeoInputError(f"items[{n}]", f"must be a NewItem, got {type(item).__name__}")
            if not isinstance(item.id, str) or not item.id:
                raise NeoInputError(f"items[{n}].id", "must be a non-empty string")
            if item.id in self.records or item.id in seen:
                where = "the catalog" if item.id in self.records else "an earlier entry"
                raise NeoInputError(f"items[{n}].id", f"{item.id!r} is already in {where}")
            seen.add(item.id)
            if not isinstance(item.title, str) or not item.title.strip():
                raise NeoInputError(f"items[{n}].title", "must be a non-empty string")

    def _children_table(self, table: SIDTable, items: Sequence[NewItem]) -> SIDTable:
        from neo.sids.build import encode_new_children

        parents = self.tables[table.parent_type]
        for n, item in enumerate(items):
            if item.embedding is not None:
                raise NeoInputError(
                    f"items[{n}].embedding",
                    f"{table.entity_type!r} items are nested under {table.parent_type!r}: give `parent`, "
                    "not an embedding",
                )
            if not isinstance(item.parent, str) or not parents.contains(item.parent):
                raise NeoInputError(
                    f"items[{n}].parent", f"must name a {table.parent_type!r} item of the catalog, got "
                    f"{item.parent!r}"
                )
        keyed = [item.order_key is not None for item in items]
        if any(keyed) and not all(keyed):
            raise NeoInputError(f"items[{keyed.index(False)}].order_key", "give an order_key for every item "
                                "or for none")
        keys = [item.order_key for item in items] if all(keyed) else None
        if keys is not None and len({type(k) is str for k in keys}) > 1:
            raise NeoInputError("items", "order keys must be all numbers or all strings")
        return encode_new_children(table, parents, [i.id for i in items], [i.parent for i in items], keys).table

    def _quantised_table(self, table: SIDTable, items: Sequence[NewItem]) -> SIDTable:
        from neo.sids.build import encode_new_items, load_quantizer
        from neo.sids.table import codebooks_path

        entity_type = table.entity_type
        path = codebooks_path(self.sids_dir, entity_type) if self.sids_dir is not None else None
        if path is None or not path.exists():
            raise NeoInputError(
                "entity_type",
                f"{entity_type!r} has no fitted codebooks ({path or 'the checkpoint directory is unknown'}): "
                "its SIDs were imported or built before checkpoints carried codebooks, so new items need "
                "codes from their source (Neo.add_items with an extended table)",
            )
        quantizer = load_quantizer(self.sids_dir, entity_type)
        width = quantizer.input_width
        rows = []
        for n, item in enumerate(items):
            if item.parent is not None:
                raise NeoInputError(f"items[{n}].parent", f"{entity_type!r} is not a nested type")
            row = _vector(item.embedding)
            if row is None or row.shape != (width,) or not np.isfinite(row).all():
                raise NeoInputError(
                    f"items[{n}].embedding",
                    f"must be {width} finite numbers (the embedding {entity_type!r} SIDs were built from)",
                )
            rows.append(row)
        return encode_new_items(quantizer, np.stack(rows), table, [i.id for i in items]).table

    def item(self, item_id: str, score: float | None = None) -> ItemResult:
        entity_type, title = self.records[item_id]
        sid = self.vocab.span_text(entity_type, self.tables[entity_type].code_of(item_id))
        return ItemResult(item_id, entity_type, title, sid, score)

    # ----- validation ------------------------------------------------------------------------------
    def _check_type(self, name: str, value: Any) -> None:
        if value not in self.tables:
            raise NeoInputError(name, f"unknown entity type {value!r}; valid types: {self.entity_types}")

    def _check_items(self, name: str, items: Any, max_items: int, allow_empty: bool) -> None:
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise NeoInputError(name, "must be a list of item ids")
        if not items and not allow_empty:
            raise NeoInputError(name, "must name at least one item")
        if len(items) > max_items:
            raise NeoInputError(name, f"has {len(items)} items; the limit is {max_items}")
        for position, entry in enumerate(items):
            item_id = _item_id(entry)
            if not isinstance(item_id, str) or item_id not in self.records:
                raise NeoInputError(
                    f"{name}[{position}]",
                    f"unknown item {item_id!r}: history and exclude "
                    f"take catalog item ids of types {self.entity_types} (see /v1/catalog)",
                )

    def _check_filters(self, filters: ItemFilters | None) -> None:
        if filters is None:
            return
        if not isinstance(filters, ItemFilters):
            raise NeoInputError(
                "filters", f"must be a neo.decoding.filters.ItemFilters, got {type(filters).__name__}"
            )
        if filters.allow is not None:
            self._check_items("filters.allow", list(filters.allow), self.limits.max_exclude, allow_empty=True)
        self._check_items("filters.deny", list(filters.deny), self.limits.max_exclude, allow_empty=True)

    def validate(self, request: Request) -> None:
        """Raise `NeoInputError` naming the first invalid field; cheap (no model call)."""
        if isinstance(request, RecommendRequest):
            self._check_items("history", request.history, self.limits.max_history, allow_empty=False)
            self._check_type("target_type", request.target_type)
            _check_k(request.k, self.limits)
            self._check_items("exclude", request.exclude or [], self.limits.max_exclude, allow_empty=True)
            self._check_filters(request.filters)
            if request.discovery is not None and request.discovery not in FAMILIARITY:
                raise NeoInputError(
                    "discovery", f"must be one of {list(FAMILIARITY)} or null, got {request.discovery!r}"
                )
            _check_prior_weight(request.prior_weight)
        elif isinstance(request, SearchRequest):
            _check_text("query", request.query, self.limits.max_query_chars)
            self._check_type("target_type", request.target_type)
            _check_k(request.k, self.limits)
            _check_prior_weight(request.prior_weight)
        elif isinstance(request, DescribeUserRequest):
            self._check_items("history", request.history, self.limits.max_history, allow_empty=False)
            _check_max_new_tokens(request.max_new_tokens, self.limits)
        elif isinstance(request, GenerateRequest):
            _check_text("prompt", request.prompt, self.limits.max_prompt_chars)
            _check_max_new_tokens(request.max_new_tokens, self.limits)
            for position, entity_type in enumerate(request.allowed_types or []):
                self._check_type(f"allowed_types[{position}]", entity_type)
            self._check_filters(request.filters)
        else:
            raise TypeError(f"not a neo request: {type(request).__name__}")

    # ----- prompts ---------------------------------------------------------------------------------
    def _history(self, history: Sequence[str | HistoryEntry], task: str) -> list[HistoryLine]:
        """History lines as training rendered them: the most recent `max_history` items of the task's
        training config, each its SID span plus the day gap and context when given."""
        if task in self.prompt_history:
            history = history[-self.prompt_history[task] :]
        lines = []
        for entry in history:
            if isinstance(entry, HistoryEntry):
                lines.append(
                    HistoryLine(self.item(entry.item).sid, entry.timestamp, dict(entry.context or {}))
                )
            else:
                lines.append(HistoryLine(self.item(entry).sid))
        return lines

    def _continues_sequence(self, request: RecommendRequest) -> bool:
        """Whether a recommendation is asked as the next line of the history: the evaluator's rule
        (`continues_history`), and never with a discovery control (that layout has no place for one)."""
        history_types = (self.records[_item_id(entry)][0] for entry in request.history)
        return request.discovery is None and continues_history(self.rec_prompt, history_types, request.target_type)

    def _prompt(self, request: Request) -> str:
        """The exact training-time prompt of a request (neo.tasks.prompts builders, the chat format)."""
        if isinstance(request, RecommendRequest):
            if self._continues_sequence(request):
                return rec_sequence_continuation(
                    self._history(request.history, "rec_sequence"), chat=self.chat, style=self.style
                )
            return recommend_prompt(
                self._history(request.history, "recommend"),
                request.target_type,
                k=request.k,
                output_format="ids",
                familiarity=request.discovery,
                chat=self.chat,
                style=self.style,
            )
        if isinstance(request, SearchRequest):
            return search_prompt(
                request.query, request.target_type, k=request.k, output_format="ids", chat=self.chat
            )
        if isinstance(request, DescribeUserRequest):
            return profile_prompt(self._history(request.history, "profile"), chat=self.chat, style=self.style)
        return generic_prompt(request.prompt, chat=self.chat)

    def _tokens(self, request: Request, new_tokens: int) -> list[int]:
        """The prompt's token ids; refuses a prompt that leaves no room in the context for the answer."""
        tokens = self.encoder.encode([self._prompt(request)])[0]
        if self.context_length and len(tokens) + new_tokens > self.context_length:
            name = {SearchRequest: "query", GenerateRequest: "prompt"}.get(type(request), "history")
            raise NeoInputError(
                name,
                f"the prompt is {len(tokens)} tokens and the answer needs up to {new_tokens}, "
                f"but the model's context is {self.context_length} tokens; shorten it",
            )
        return tokens

    def _batch(self, token_lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder.batch(token_lists, self.device)

    # ----- decoding --------------------------------------------------------------------------------
    def _answer_budget(self, request: Request) -> int:
        if isinstance(request, RecommendRequest | SearchRequest):
            return self.vocab.block(request.target_type).levels + 2
        return request.max_new_tokens or self.max_new_tokens

    def _beam_width(self, request: RecommendRequest | SearchRequest) -> int:
        return max(self.beam_width, request.k)

    def _rank(
        self, requests: Sequence[RecommendRequest | SearchRequest], prompts: Sequence[Sequence[int]]
    ) -> list[list[ItemResult]]:
        """One item beam search for rows sharing a beam width; each row keeps its own top `k`.

        A row's top `k` of a search for max(k) items is exactly its own top-`k` search (same beams),
        so mixing `k`s in one batch changes no answer.
        """
        from neo.decoding.beam import beam_search_items

        input_ids, attention_mask = self._batch(prompts)
        exclude = [list(getattr(r, "exclude", None) or []) for r in requests]
        trie = self.trie  # one trie for the whole call, even if an addition swaps it meanwhile
        prior = self._fusion(requests, trie)
        with torch.inference_mode():
            hits = beam_search_items(
                self.model,
                input_ids,
                attention_mask,
                trie,
                [r.target_type for r in requests],
                max(r.k for r in requests),
                beam_width=self._beam_width(requests[0]),
                exclude=exclude if any(exclude) else None,
                filters=[getattr(r, "filters", None) for r in requests],
                prior=prior,
            )
        return [
            [self.item(hit.item_id, float(hit.score)) for hit in row[: r.k]]
            for r, row in zip(requests, hits, strict=True)
        ]

    def _fusion(self, requests: Sequence[RecommendRequest | SearchRequest], trie: ItemTrie) -> FusionBatch | None:
        """The beam search's prior for a batch: the transition prior on recommendation rows, the lexical
        prior on search rows, each at the request's weight; None when no row has one."""
        weights = [self._prior_weight(r) for r in requests]
        recommended = [i for i, r in enumerate(requests) if weights[i] and isinstance(r, RecommendRequest)]
        searched = [i for i, r in enumerate(requests) if weights[i] and isinstance(r, SearchRequest)]
        if not recommended and not searched:
            return None
        parts = []
        if recommended:
            picked = [requests[i] for i in recommended]
            parts.append((recommended, self.prior.fusion(
                trie, [[_item_id(e) for e in r.history] for r in picked], [r.target_type for r in picked],
                self.fusion, weights=[weights[i] for i in recommended], fresh=self._fresh,
            )))
        if searched:
            picked = [requests[i] for i in searched]
            parts.append((searched, self.lexical.fusion(
                trie, [r.query for r in picked], [r.target_type for r in picked], self.lexical_fusion,
                weights=[weights[i] for i in searched],
            )))
        return combine(len(requests), parts)  # requests with neither prior get weight 0: the model alone

    def _prior_weight(self, request: RecommendRequest | SearchRequest) -> float:
        """The weight of a ranked request's prior: the request's own, else the model's (the transition
        prior's weight for the request's type for recommendations, the lexical prior's for searches); 0
        without one."""
        if isinstance(request, RecommendRequest):
            default, available = self.fusion.weight_for(request.target_type), self.prior is not None
        else:
            default, available = self.lexical_fusion.weight, self.lexical is not None
        if not available:
            return 0.0
        return default if request.prior_weight is None else float(request.prior_weight)

    def _generate(
        self, requests: Sequence[DescribeUserRequest | GenerateRequest], prompts: Sequence[Sequence[int]]
    ) -> list[TextResult]:
        """Mixed text/item generation for rows that share their allowed types and token budget."""
        from neo.decoding.generate import ItemSegment, generate_mixed

        allowed = list(getattr(requests[0], "allowed_types", None) or self.entity_types)
        input_ids, attention_mask = self._batch(prompts)
        with torch.inference_mode():
            outputs = generate_mixed(
                self.model,
                input_ids,
                attention_mask,
                self.trie,
                allowed,
                max_new_tokens=self._answer_budget(requests[0]),
                eos_token_id=self.encoder.stop_ids,
                filters=[getattr(r, "filters", None) for r in requests],
            )
        results = []
        for output in outputs:
            segments = []
            for segment in output.segments:
                if isinstance(segment, ItemSegment):
                    item = self.item(segment.item_id)
                    segments.append(Segment(item.title, item))
                else:
                    segments.append(
                        Segment(self.tokenizer.decode(segment.token_ids, skip_special_tokens=True))
                    )
            results.append(TextResult("".join(s.text for s in segments), segments))
        return results

    # ----- batches ---------------------------------------------------------------------------------
    def run_batch(self, requests: Sequence[Request]) -> list[Any]:
        """Answer a mixed batch: one result per request, or the `Exception` that request raised.

        Rows are grouped so each decoder call gets rows it can share (ranking rows by beam width,
        generation rows by allowed types and budget), at most `max_batch_size` requests a call; a bad
        request fails alone and never takes its batch-mates with it.
        """
        results: list[Any] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        prompts: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            try:
                self.validate(request)
                prompts[index] = self._tokens(request, self._answer_budget(request))
            except NeoInputError as exc:
                results[index] = exc
                continue
            if isinstance(request, RecommendRequest | SearchRequest):
                key: tuple = ("rank", self._beam_width(request))
            else:
                allowed = tuple(getattr(request, "allowed_types", None) or ())
                key = ("generate", allowed, self._answer_budget(request))
            groups.setdefault(key, []).append(index)
        for key, group_indices in groups.items():
            for start in range(0, len(group_indices), self.max_batch_size):
                indices = group_indices[start : start + self.max_batch_size]
                group = [requests[i] for i in indices]
                group_prompts = [prompts[i] for i in indices]
                try:
                    answers: list[Any] = (
                        self._rank(group, group_prompts)
                        if key[0] == "rank"
                        else self._generate(group, group_prompts)
                    )
                except Exception as exc:  # reported per request by the caller (the server answers 500)
                    answers = [exc] * len(indices)
                for index, answer in zip(indices, answers, strict=True):
                    results[index] = answer
        return results

    def _run(self, requests: Sequence[Request]) -> list[Any]:
        results = self.run_batch(requests)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def recommend_batch(self, requests: Sequence[RecommendRequest]) -> list[list[ItemResult]]:
        return self._run(requests)

    def search_batch(self, requests: Sequence[SearchRequest]) -> list[list[ItemResult]]:
        return self._run(requests)

    def describe_user_batch(self, requests: Sequence[DescribeUserRequest]) -> list[TextResult]:
        return self._run(requests)

    def generate_batch(self, requests: Sequence[GenerateRequest]) -> list[TextResult]:
        return self._run(requests)

    # ----- single requests -------------------------------------------------------------------------
    def recommend(
        self,
        history: Sequence[str | HistoryEntry],
        target_type: str,
        k: int = 10,
        discovery: str | None = None,
        exclude: Sequence[str] | None = None,
        filters: ItemFilters | None = None,
        prior_weight: float | None = None,
    ) -> list[ItemResult]:
        """Top-k items of `target_type` for a history of item ids (oldest first), best first.

        `prior_weight` overrides the transition prior's weight for this call (0: the model alone, e.g.
        when fresh items matter most; see docs/decoding.md)."""
        return self._run([RecommendRequest(history, target_type, k, discovery, exclude, filters, prior_weight)])[0]

    def search(
        self, query: str, target_type: str, k: int = 10, prior_weight: float | None = None
    ) -> list[ItemResult]:
        """Top-k items of `target_type` for a text query, best first.

        `prior_weight` overrides the lexical (BM25) prior's weight for this call (0: the model alone).
        """
        return self._run([SearchRequest(query, target_type, k, prior_weight)])[0]

    def describe_user(
        self, history: Sequence[str | HistoryEntry], max_new_tokens: int | None = None
    ) -> TextResult:
        """A natural-language profile of a history; item mentions are resolved to catalog records."""
        return self._run([DescribeUserRequest(history, max_new_tokens)])[0]

    def generate(
        self,
        prompt: str,
        max_new_tokens: int | None = None,
        allowed_types: Sequence[str] | None = None,
        filters: ItemFilters | None = None,
    ) -> TextResult:
        """Answer a free instruction (wrapped in the training chat format); items come out resolved,
        distinct, and inside `filters` (allow/deny lists) when given."""
        return self._run([GenerateRequest(prompt, max_new_tokens, allowed_types, filters)])[0]
