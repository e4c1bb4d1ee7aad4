"""From catalog + split + SIDs to packed, tokenised training rows, on `datasets`.

    build_examples     per task: keys (users / items / queries) -> map(num_proc) -> examples;
                       then a deterministic weighted mixture for the stage
    tokenize_examples  prompt + completion -> input_ids, labels (-100 on the prompt; for
                       `rec_sequence` labels only on SID tokens), attention_mask
    pack               best-fit-decreasing packing into fixed-length rows with per-example
                       position ids, so the trainer can keep examples from attending to each other
    build_training_dataset  all of the above, cached on disk under a key of every input

Leakage rule: user-derived examples come from `split.train` only (see `TaskContext.train_history`);
`check_leakage` re-verifies every built dataset and the pipeline refuses to return one that fails.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
import pickle
import shutil
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from neo.data.catalog import Catalog, cache_root
from neo.tasks import align, children, next_items, profile, rec_sequence, recommend, recsplain, search
from neo.tasks.base import Example, Task, TaskContext
from neo.tasks.encoding import leading_bos
from neo.tasks.prompts import ChatFormat, HistoryStyle
from neo.vocab import SIDVocab

log = logging.getLogger(__name__)

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        align.TASK, children.TASK, next_items.TASK, recommend.TASK, rec_sequence.TASK, search.TASK, recsplain.TASK,
        profile.TASK,
    )
}
USER_TASKS = ("recommend", "rec_sequence", "recsplain", "profile")
SPAN_LOSS_TASKS = ("rec_sequence",)
EXAMPLE_FEATURES = datasets.Features(
    {name: datasets.Value("string") for name in ("prompt", "completion", "task", "meta")}
)
PIPELINE_VERSION = "1"
MIN_KEYS_PER_WORKER = 20_000  # below this, shipping the context to a worker costs more than it saves
IGNORE_INDEX = -100


# ----- configuration ----------------------------------------------------------------------------
def plain(cfg: Any) -> Any:
    """A config (OmegaConf or plain) as nested dicts/lists, for hashing and for pickling to workers."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, DictConfig | ListConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:
        pass
    if isinstance(cfg, Mapping):
        return {str(k): plain(v) for k, v in cfg.items()}
    if isinstance(cfg, list | tuple):
        return [plain(v) for v in cfg]
    return cfg


def history_style(catalog: Catalog, cfg: Mapping[str, Any]) -> HistoryStyle:
    """`history.gaps: auto` shows day gaps only when timestamps look like Unix seconds (not ordinals)."""
    gaps = cfg.get("gaps", "auto")
    if gaps == "auto":
        stamps = np.asarray(catalog.interactions["timestamp"], dtype=np.float64)
        gaps = bool(len(stamps)) and float(np.median(stamps)) > 1e8
    elif not isinstance(gaps, bool):
        raise ValueError(f"tasks.history.gaps must be true, false or 'auto', got {gaps!r}")
    return HistoryStyle(show_gaps=gaps, context_keys=tuple(cfg.get("context_keys", ("surface",))))


# ----- examples ---------------------------------------------------------------------------------
class _ExampleBuilder:
    """The batched `map` function: a batch of keys -> the examples of those keys (row count changes).

    `datasets` ships the function to each worker with dill, whose pure-Python pickler takes ~10x
    longer than `pickle` on the context's large dicts; the state is therefore pickled as one
    `pickle` blob that dill only copies.
    """

    def __init__(self, ctx: TaskContext, task: Task, cfg: Mapping[str, Any], seed: int):
        self.ctx, self.task, self.cfg, self.seed = ctx, task, cfg, seed

    def __getstate__(self) -> dict[str, bytes]:
        return {
            "blob": pickle.dumps((self.ctx, self.task, self.cfg, self.seed), protocol=pickle.HIGHEST_PROTOCOL)
        }

    def __setstate__(self, state: dict[str, bytes]) -> None:
        self.ctx, self.task, self.cfg, self.seed = pickle.loads(state["blob"])

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"prompt": [], "completion": [], "task": [], "meta": []}
        for key in batch["key"]:
            for example in self.task.examples(self.ctx, key, self.cfg, self.seed):
                out["prompt"].append(example.prompt)
                out["completion"].append(example.completion)
                out["task"].append(example.task)
                out["meta"].append(json.dumps(example.meta, ensure_ascii=False))
        return out


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def task_examples(
    ctx: TaskContext, name: str, task_cfg: Mapping[str, Any], seed: int, num_proc: int = 1
) -> datasets.Dataset:
    """All examples of one task, as a Dataset with columns prompt, completion, task, meta (JSON)."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    task, task_cfg = TASKS[name], plain(task_cfg or {})
    keys = task.keys(ctx, task_cfg)
    if not keys:
        return datasets.Dataset.from_dict({k: [] for k in EXAMPLE_FEATURES}, features=EXAMPLE_FEATURES)
    _warm(ctx)
    units = datasets.Dataset.from_dict({"key": keys})
    workers = max(1, min(num_proc, len(keys) // MIN_KEYS_PER_WORKER))
    return units.map(
        _ExampleBuilder(ctx, task, task_cfg, seed),
        batched=True,
        batch_size=256,
        num_proc=workers if workers > 1 else None,
        remove_columns=["key"],
        features=EXAMPLE_FEATURES,
        new_fingerprint=_fingerprint("examples", name, task_cfg, seed, len(keys)),
        desc=f"{name} examples",
    )


def _warm(ctx: TaskContext) -> None:
    """Build the context's lookups once in the parent, so worker processes inherit rather than rebuild them."""
    _ = ctx.span, ctx.title, ctx.linked_types, ctx.train_users


def mixture_counts(
    available: Mapping[str, int], weights: Mapping[str, float], total: int | None
) -> dict[str, int]:
    """Rows per task: proportional to `weights`, summing to `total` (default: all available rows).

    Largest-remainder rounding keeps the sum exact. A task with fewer rows than its share is
    repeated (oversampled); tasks with no rows drop out and their share goes to the others.
    """
    active = {t: float(w) for t, w in weights.items() if float(w) > 0 and available.get(t, 0) > 0}
    if not active:
        return {}
    total = sum(available[t] for t in active) if total is None else int(total)
    norm = sum(active.values())
    exact = {t: total * w / norm for t, w in active.items()}
    counts = {t: int(np.floor(x)) for t, x in exact.items()}
    by_remainder = sorted(active, key=lambda t: (-(exact[t] - counts[t]), t))
    for t in by_remainder[: total - sum(counts.values())]:
        counts[t] += 1
    return counts


def _rows(available: int, wanted: int, rng: np.random.Generator) -> np.ndarray:
    """`wanted` row indices out of `available`: whole shuffled copies, then a shuffled remainder."""
    copies, rest = divmod(wanted, available)
    parts = [rng.permutation(available) for _ in range(copies)]
    parts.append(rng.permutation(available)[:rest])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def mix(
    per_task: Mapping[str, datasets.Dataset], weights: Mapping[str, float], total: int | None, seed: int
) -> datasets.Dataset:
    """The deterministic weighted mixture: same inputs and seed give the same rows in the same order."""
    counts = mixture_counts({t: len(ds) for t, ds in per_task.items()}, weights, total)
    if not counts:
        raise ValueError(
            f"the mixture {dict(weights)} selects no examples (available: "
            f"{ {t: len(ds) for t, ds in per_task.items()} })"
        )
    parts = []
    for name in sorted(counts):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        parts.append(per_task[name].select(_rows(len(per_task[name]), counts[name], rng)))
    mixed = datasets.concatenate_datasets(parts)
    order = np.random.default_rng([seed, zlib.crc32(b"mixture")]).permutation(len(mixed))
    return mixed.select(order).flatten_indices()


def stage_config(tasks_cfg: Mapping[str, Any], stage: str) -> dict[str, Any]:
    stages = tasks_cfg.get("stages", {})
    if stage not in stages:
        raise KeyError(f"tasks.stages has no stage {stage!r}; defined: {sorted(stages)}")
    mixture = dict(stages[stage].get("mixture") or {})
    unknown = sorted(set(mixture) - set(TASKS))
    if unknown:
        raise ValueError(f"tasks.stages.{stage}.mixture: unknown task(s) {unknown}; known: {sorted(TASKS)}")
    return {"mixture": mixture, "total": stages[stage].get("total")}


def build_examples(
    ctx: TaskContext, tasks_cfg: Mapping[str, Any], seed: int = 0, stage: str = "instruct", num_proc: int = 1
) -> datasets.Dataset:
    """Every task of `stage`'s mixture, built and mixed: columns prompt, completion, task, meta."""
    tasks_cfg = plain(tasks_cfg)
    stage_cfg = stage_config(tasks_cfg, stage)
    # Hydra merges a preset's mixture into the default one, so presets drop a task with weight 0: never built
    weighted = sorted(name for name, weight in stage_cfg["mixture"].items() if float(weight) > 0)
    log.info("stage %s mixture: %s (total %s)", stage, {n: stage_cfg["mixture"][n] for n in weighted},
             stage_cfg["total"])
    per_task = {}
    for name in tqdm(weighted, desc=f"tasks ({stage})", unit="task"):
        per_task[name] = task_examples(
            ctx, name, (tasks_cfg.get("tasks") or {}).get(name, {}), seed, num_proc
        )
    mixed = mix(per_task, stage_cfg["mixture"], stage_cfg["total"], seed)
    leaks = check_leakage(ctx, mixed)
    if leaks:
        raise AssertionError(
            f"{len(leaks)} examples mention items outside their user's training history, "
            f"e.g. row {leaks[0]}: {mixed[leaks[0]]['meta']}"
        )
    return mixed


def check_leakage(ctx: TaskContext, ds: datasets.Dataset) -> list[int]:
    """Rows of user-derived tasks whose items are not reachable from that user's training interactions.

    Reachable: the training items themselves and their `target_of` for every type (their show,
    brand...). A validation or test target can only appear where the user also has it in training.
    """
    bad = []
    reachable: dict[str, set[str]] = {}
    table = _flat(ds).data
    tasks, metas = table.column("task").to_pylist(), table.column("meta").to_pylist()
    for row, (task, meta) in enumerate(zip(tasks, metas, strict=True)):
        if task not in USER_TASKS:
            continue
        info = json.loads(meta)
        user = info["user"]
        if user not in reachable:
            items = {x.item for x in ctx.split.train.get(user, ())}
            reachable[user] = items | {
                t for i in items for ty in ctx.sid_types if (t := ctx.target(i, ty)) is not None
            }
        if not set(info["items"]) <= reachable[user]:
            bad.append(row)
    return bad


# ----- tokenisation -----------------------------------------------------------------------------
class _Tokenizer:
    """The batched `map` function of `tokenize_examples`."""

    def __init__(self, tokenizer: Any, vocab: SIDVocab, end_text: str, bos_id: int | None):
        self.tokenizer, self.base_size, self.end_text, self.bos_id = (
            tokenizer,
            vocab.base_size,
            end_text,
            bos_id,
        )

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids without special tokens; fast tokenizers skip the offsets that neo never reads."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and hasattr(backend, "encode_batch_fast"):
            return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        ends = ["" if task in SPAN_LOSS_TASKS else self.end_text for task in batch["task"]]
        prompts = self.encode(batch["prompt"])
        completions = self.encode([c + e for c, e in zip(batch["completion"], ends, strict=True)])
        out: dict[str, list] = {"input_ids": [], "labels": [], "attention_mask": []}
        for prompt, completion, task in zip(prompts, completions, batch["task"], strict=True):
            if self.bos_id is not None:
                prompt = [self.bos_id, *prompt]
            if task in SPAN_LOSS_TASKS:
                answer = [t if t >= self.base_size else IGNORE_INDEX for t in completion]
            else:
                answer = list(completion)
            out["input_ids"].append(prompt + completion)
            out["labels"].append([IGNORE_INDEX] * len(prompt) + answer)
            out["attention_mask"].append([1] * (len(prompt) + len(completion)))
        return out


def tokenize_examples(
    ds: datasets.Dataset,
    tokenizer: Any,
    max_length: int,
    num_proc: int = 1,
    *,
    vocab: SIDVocab,
    end_text: str | None = None,
) -> datasets.Dataset:
    """Columns input_ids, labels, attention_mask, task; examples longer than `max_length` are dropped (logged).

    Prompt and completion are tokenised separately so the label boundary is exact; the completion
    gets `end_text` (the chat template's end-of-turn, or EOS) so the model learns to stop --
    except for `rec_sequence`, whose history has no natural end.
    """
    if len(tokenizer) != vocab.total_size:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the SID vocabulary needs {vocab.total_size}; "
            "call neo.vocab.attach_to_tokenizer first"
        )
    end_text = ChatFormat.from_tokenizer(tokenizer).end if end_text is None else end_text
    encode = _Tokenizer(tokenizer, vocab, end_text, leading_bos(tokenizer))
    tokenized = ds.map(
        encode,
        batched=True,
        batch_size=512,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=[c for c in ds.column_names if c != "task"],
        new_fingerprint=_fingerprint(
            "tokens", ds._fingerprint, tokenizer.name_or_path, len(tokenizer), end_text, max_length
        ),
        desc="tokenising",
    )
    lengths = np.diff(_list_column(tokenized, "input_ids")[1])
    keep = np.flatnonzero(lengths <= max_length)
    if len(keep) < len(tokenized):
        too_long = np.asarray(tokenized["task"])[lengths > max_length]
        per_task = dict(zip(*np.unique(too_long, return_counts=True), strict=True))
        log.warning(
            "dropped %d of %d examples longer than max_length=%d tokens (longest: %d; per task: %s); "
            "lower those tasks' max_history or raise max_length",
            len(too_long),
            len(tokenized),
            max_length,
            int(lengths.max()),
            {str(task): int(count) for task, count in per_task.items()},
        )
        tokenized = tokenized.select(keep).flatten_indices()
    return tokenized


# ----- packing ----------------------------------------------------------------------------------
def pack_plan(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """Best-fit decreasing: groups of example indices whose lengths sum to at most `max_length`.

    Each example goes, longest first, into the open row with the least room that still fits it
    (ties: the oldest row), so rows come out nearly full; deterministic for the same lengths.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining room, row index), sorted
    for index in order:
        size = lengths[index]
        if size > max_length:
            raise ValueError(f"example {index} has {size} tokens, more than max_length={max_length}")
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            room, row = free.pop(slot)
        else:
            room, row = max_length, len(rows)
            rows.append([])
        rows[row].append(index)
        if room - size > 0:
            bisect.insort(free, (room - size, row))
    return rows


def _flat(ds: datasets.Dataset) -> datasets.Dataset:
    """`ds` with any selection applied to its Arrow table (a no-op when there is none)."""
    return ds.flatten_indices() if ds._indices is not None else ds


def _list_column(ds: datasets.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (flat values, offsets) straight from Arrow: no per-row Python objects."""
    column = _flat(ds).data.column(name).combine_chunks()
    offsets = column.offsets.to_numpy()
    return column.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]], offsets - offsets[0]


def pack(ds: datasets.Dataset, max_length: int, pad_id: int) -> datasets.Dataset:
    """Fixed-length rows of several examples: input_ids, labels, attention_mask, position_ids.

    `position_ids` restart at 0 at every example, so `segment_ids` recovers the boundaries and
    `block_causal_mask` builds the attention mask that keeps examples apart (transformers' packed
    path reads the same position ids). The padding tail has attention_mask 0 and labels -100 and
    counts 0, 1, 2... like one more example, so it forms a single label-free segment.
    """
    ids, offsets = _list_column(ds, "input_ids")
    labels, _ = _list_column(ds, "labels")
    lengths = np.diff(offsets)
    plan = pack_plan(lengths.tolist(), max_length)
    rows = len(plan)
    # One vectorised scatter: example e (in plan order) goes to flat slot row * max_length + cursor.
    order = np.fromiter((i for group in plan for i in group), dtype=np.int64, count=len(lengths))
    row_of = np.repeat(np.arange(rows), [len(group) for group in plan])
    if rows * max_length >= 2**31:
        raise ValueError(
            f"{rows} packed rows of {max_length} tokens exceed Arrow's 32-bit list offsets; "
            "build the stage in parts"
        )
    sizes = lengths[order]
    within = np.cumsum(sizes) - sizes  # start of each example in the concatenation
    per_row = [len(group) for group in plan]
    first_in_row = np.r_[0, np.cumsum(per_row)[:-1]].astype(np.int64)
    cursor = within - np.repeat(within[first_in_row], per_row)  # start of each example inside its row
    total = int(sizes.sum())
    step = np.arange(total) - np.repeat(within, sizes)  # position inside the example
    dest = np.repeat(row_of * max_length + cursor, sizes) + step
    src = np.repeat(offsets[order], sizes) + step
    out_ids = np.full(rows * max_length, pad_id, dtype=np.int64)
    out_labels = np.full(rows * max_length, IGNORE_INDEX, dtype=np.int64)
    mask = np.zeros(rows * max_length, dtype=np.int64)
    out_ids[dest], out_labels[dest], mask[dest] = ids[src], labels[src], 1
    # Padding tails count 0, 1, 2... too: positions restart wherever a new example or the tail begins.
    used = np.bincount(row_of, weights=sizes, minlength=rows).astype(np.int64)
    starts = np.concatenate(
        [
            row_of * max_length + cursor,
            np.flatnonzero(used < max_length) * max_length + used[used < max_length],
        ]
    )
    segment_start = np.zeros(rows * max_length, dtype=np.int64)
    segment_start[starts] = starts
    positions = np.arange(rows * max_length) - np.maximum.accumulate(segment_start)
    row_offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * max_length)
    columns = {"input_ids": out_ids, "labels": out_labels, "attention_mask": mask, "position_ids": positions}
    table = pa.table(
        {name: pa.ListArray.from_arrays(row_offsets, pa.array(values)) for name, values in columns.items()}
    )
    return datasets.Dataset(table, fingerprint=_fingerprint("packed", ds._fingerprint, max_length, pad_id))


def segment_ids(position_ids: Any, attention_mask: Any) -> Any:
    """Per token, which packed example it belongs to (1, 2, ...; 0 for padding). Works on numpy or torch."""
    starts = (position_ids == 0) & (attention_mask == 1)
    return starts.cumsum(-1) * attention_mask


def block_causal_mask(position_ids: Any, attention_mask: Any) -> Any:
    """Boolean [batch, 1, T, T] mask (True = may attend): causal and within one packed example only."""
    import torch

    position_ids, attention_mask = torch.as_tensor(position_ids), torch.as_tensor(attention_mask)
    segments = segment_ids(position_ids, attention_mask)
    length = segments.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segments.device).tril()
    same = (segments[:, :, None] == segments[:, None, :]) & (segments[:, :, None] > 0)
    return (same & causal)[:, None]


# ----- the whole pipeline, cached -----------------------------------------------------------------
def _tokenizer_fingerprint(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    raw = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _split_fingerprint(split: Any) -> str:
    digest = hashlib.sha256()
    for user in sorted(split.train):
        digest.update(user.encode())
        for x in split.train[user]:
            digest.update(f"\x1f{x.item}\x1e{x.timestamp}".encode())
        for part in (split.valid, split.test):
            if user in part:
                digest.update(f"\x1d{part[user].item}".encode())
    return digest.hexdigest()[:16]


def cache_key(
    ctx: TaskContext,
    tasks_cfg: Mapping[str, Any],
    stage: str,
    tokenizer: Any,
    seed: int,
    max_length: int,
    packed: bool,
) -> str:
    """Hash of everything the training rows depend on: a change to any input builds new rows."""
    catalog_tables = {
        name: getattr(ctx.catalog, name)._fingerprint
        for name in ("items", "interactions", "queries", "profiles")
        if getattr(ctx.catalog, name) is not None
    }
    return _fingerprint(
        PIPELINE_VERSION,
        ctx.catalog.name,
        catalog_tables,
        _split_fingerprint(ctx.split),
        {t: table.version for t, table in ctx.tables.items()},
        ctx.vocab.to_dict(),
        ctx.chat.to_dict(),
        ctx.style,
        plain(tasks_cfg),
        stage,
        _tokenizer_fingerprint(tokenizer),
        len(tokenizer),
        seed,
        max_length,
        packed,
    )


def build_training_dataset(
    ctx: TaskContext,
    tasks_cfg: Mapping[str, Any],
    stage: str,
    tokenizer: Any,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.Dataset:
    """Examples -> mixture -> tokens -> (packed) rows for one stage, reusing a cached copy if inputs match.

    Reads `max_length`, `pack` and `num_proc` from `tasks_cfg`. The cache lives in
    `<cache_dir or NEO_CACHE_DIR>/tasks/<stage>-<key>` and is written atomically (built in a temp
    folder, renamed into place), so an interrupted run never leaves a half-written cache.
    """
    tasks_cfg = plain(tasks_cfg)
    max_length, packed = int(tasks_cfg.get("max_length", 1024)), bool(tasks_cfg.get("pack", True))
    num_proc = int(tasks_cfg.get("num_proc", 1))
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "tasks"
    target = root / f"{stage}-{cache_key(ctx, tasks_cfg, stage, tokenizer, seed, max_length, packed)}"
    if (target / "dataset_info.json").exists():
        log.info("reusing cached training rows %s", target)
        return datasets.load_from_disk(str(target))
    examples = build_examples(ctx, tasks_cfg, seed, stage, num_proc)
    rows = tokenize_examples(
        examples, tokenizer, max_length, num_proc, vocab=ctx.vocab, end_text=ctx.chat.end
    )
    if packed:
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError("packing needs a pad or EOS token id; the tokenizer has neither")
        rows = pack(rows, max_length, pad_id)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    rows.save_to_disk(str(tmp))
    if target.exists():  # another process finished the same rows first
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, target)
    return datasets.load_from_disk(str(target))


def context(
    catalog: Catalog,
    split: Any,
    tables: Mapping[str, Any],
    vocab: SIDVocab,
    tasks_cfg: Mapping[str, Any],
    chat: ChatFormat,
) -> TaskContext:
    """A `TaskContext` with the history style of `tasks_cfg.history`."""
    return TaskContext(
        catalog, split, tables, vocab, chat, history_style(catalog, plain(tasks_cfg).get("history", {}))
    )


__all__ = [
    "TASKS",
    "Example",
    "build_examples",
    "build_training_dataset",
    "check_leakage",
    "context",
    "mix",
    "mixture_counts",
    "pack",
    "pack_plan",
    "block_causal_mask",
    "segment_ids",
    "task_examples",
    "tokenize_examples",
]
