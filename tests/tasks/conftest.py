"""A small hand-made audio catalog (shows, episodes, audiobooks, artists), SID tables and tokenizers.

Hand-made rather than the generated demo world so tests know every item exactly; it includes a
"held-out pool" (one show with its episodes and artist, plus audiobooks) that no training history
ever touches, which the leakage tests use as validation / test targets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from neo.data.catalog import Catalog
from neo.data.splits import make_split
from neo.sids.table import SIDTable
from neo.tasks.base import TaskContext
from neo.tasks.prompts import TEMPLATES, ChatFormat, HistoryStyle
from neo.vocab import SIDVocab, attach_to_tokenizer

DAY = 86400.0
START = 1_700_000_000.0
ARTISTS = ["Ada Vox", "Ben Loud", "Cleo Calm", "Dan Deep", "Hal Held"]
SHOWS = [
    ("Space Talk", 0),
    ("Garden Hour", 1),
    ("History Bits", 2),
    ("Code Cast", 3),
    ("Night Jazz", 1),
    ("Held Out Show", 4),
]
HELD_SHOW = 5
EPISODES_PER_SHOW = 5
AUDIOBOOKS = [
    "The Long Road",
    "Stars Above",
    "Silent Forest",
    "Deep Waters",
    "Held Book One",
    "Held Book Two",
]
HELD_BOOKS = (4, 5)
SURFACES = ["home", "search", "radio"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def episode_id(show: int, number: int) -> str:
    return f"ep{show}-{number}"


def write_catalog(root: Path, users: int = 14, seed: int = 0) -> Path:
    """The test catalog: deterministic histories over everything except the held-out pool."""
    rng = np.random.default_rng(seed)
    items = [
        {"id": f"artist{i}", "type": "artist", "title": name, "text": ""} for i, name in enumerate(ARTISTS)
    ]
    for s, (title, artist) in enumerate(SHOWS):
        items.append(
            {
                "id": f"show{s}",
                "type": "show",
                "title": title,
                "text": f"A show about {title.lower()}.",
                "links": {"artist": [f"artist{artist}"]},
            }
        )
        for n in range(EPISODES_PER_SHOW):
            items.append(
                {
                    "id": episode_id(s, n),
                    "type": "episode",
                    "title": f"{title} episode {n}",
                    "text": f"Episode {n} of {title}, hosted by {ARTISTS[artist]}.",
                    "links": {"show": [f"show{s}"], "artist": [f"artist{artist}"]},
                }
            )
    for b, title in enumerate(AUDIOBOOKS):
        items.append(
            {"id": f"book{b}", "type": "audiobook", "title": title, "text": f"An audiobook: {title}."}
        )
    train_pool = [
        it["id"]
        for it in items
        if it["type"] in ("episode", "audiobook")
        and not it["id"].startswith(f"ep{HELD_SHOW}-")
        and it["id"] not in {f"book{b}" for b in HELD_BOOKS}
    ]
    interactions, profiles = [], []
    for u in range(users):
        length = int(rng.integers(4, 11))
        stamp = START + u * DAY
        for item in rng.choice(train_pool, size=length, replace=True):
            stamp += float(rng.integers(0, 4)) * DAY + float(rng.integers(0, 3600))
            interactions.append(
                {
                    "user": f"u{u}",
                    "item": str(item),
                    "timestamp": stamp,
                    "context": {"surface": SURFACES[int(rng.integers(0, 3))]},
                }
            )
        profiles.append(
            {"user": f"u{u}", "text": f"Listener u{u} likes talk shows and audiobooks.", "topics": ["talk"]}
        )
    queries = [
        {"id": "q1", "text": "space podcast", "type": "show", "items": ["show0"], "split": "train"},
        {"id": "q2", "text": "jazz at night", "type": "show", "items": ["show4"], "split": "train"},
        {"id": "q3", "text": "forest audiobook", "type": "audiobook", "items": ["book2"], "split": "test"},
        {
            "id": "q4",
            "text": "garden episodes",
            "type": "episode",
            "items": [episode_id(1, 0), episode_id(1, 1)],
            "split": "train",
        },
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(
        json.dumps(
            {
                "name": "tiny-audio",
                "entity_types": ["show", "episode", "audiobook", "artist"],
                "split": {"protocol": "leave_one_out"},
            }
        )
    )
    for name, rows in (
        ("items", items),
        ("users", [{"id": f"u{u}"} for u in range(users)]),
        ("interactions", interactions),
        ("profiles", profiles),
        ("queries", queries),
    ):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def random_tables(catalog: Catalog, seed: int = 0) -> dict[str, SIDTable]:
    """Unique random codes per type (3 levels of 8)."""
    rng = np.random.default_rng(seed)
    tables = {}
    for entity_type in catalog.type_names:
        ids = catalog.item_ids(entity_type)
        flat = rng.choice(8**3, size=len(ids), replace=False)
        codes = np.stack([flat // 64, (flat // 8) % 8, flat % 8], axis=1)
        tables[entity_type] = SIDTable(entity_type, ids, codes, (8, 8, 8))
    return tables


def nested_tables(catalog: Catalog, seed: int = 0) -> dict[str, SIDTable]:
    """`random_tables`, but episodes nested under their show (show code + episode number)."""
    tables = random_tables(catalog, seed)
    shows = tables["show"]
    ids = catalog.item_ids("episode")
    codes = np.array([[*shows.code_of(f"show{i.split('-')[0][2:]}"), int(i.split("-")[1])] for i in ids])
    meta = {"source": "nested", "config": {"parent": {"type": "show", "order_by": None}}}
    tables["episode"] = SIDTable("episode", ids, codes, (8, 8, 8, EPISODES_PER_SHOW), meta)
    return tables


def corpus() -> list[str]:
    """Text to train the test tokenizer's BPE on: templates and some catalog-like words."""
    lines = [t for pools in TEMPLATES.values() for pool in pools.values() for t in pool]
    lines += ARTISTS + [s for s, _ in SHOWS] + AUDIOBOOKS + SURFACES + ["History:", "+3d", "episode"]
    return lines


def make_tokenizer(
    vocab: dict[str, list[int]], chat_template: str | None = None
) -> tuple[PreTrainedTokenizerFast, SIDVocab]:
    """A byte-level BPE tokenizer (no unknown tokens) with the SID tokens attached."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    sid_vocab = SIDVocab(len(tokenizer), vocab)
    attach_to_tokenizer(tokenizer, sid_vocab)
    return tokenizer, sid_vocab


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return Catalog.load(write_catalog(tmp_path_factory.mktemp("tiny-audio")))


@pytest.fixture(scope="session")
def tables(catalog: Catalog) -> dict[str, SIDTable]:
    return nested_tables(catalog)


@pytest.fixture(scope="session")
def plain_tokenizer(tables: dict[str, SIDTable]) -> tuple[PreTrainedTokenizerFast, SIDVocab]:
    return make_tokenizer({t: list(tab.codebook_sizes) for t, tab in tables.items()})


@pytest.fixture(scope="session")
def chat_tokenizer(tables: dict[str, SIDTable]) -> tuple[PreTrainedTokenizerFast, SIDVocab]:
    return make_tokenizer({t: list(tab.codebook_sizes) for t, tab in tables.items()}, CHATML)


@pytest.fixture(scope="session")
def ctx(catalog: Catalog, tables: dict[str, SIDTable], plain_tokenizer) -> TaskContext:
    tokenizer, vocab = plain_tokenizer
    return TaskContext(
        catalog,
        make_split(catalog),
        tables,
        vocab,
        ChatFormat.from_tokenizer(tokenizer),
        HistoryStyle(show_gaps=True, context_keys=("surface",)),
    )


@pytest.fixture(scope="session")
def tasks_cfg() -> dict:
    return {
        "max_length": 512,
        "pack": True,
        "num_proc": 1,
        "history": {"gaps": "auto", "context_keys": ["surface"]},
        "tasks": {
            "align": {"max_text_chars": 120},
            "recommend": {
                "examples_per_user": 2,
                "max_history": 8,
                "k": [1, 3],
                "familiarity_rate": 0.5,
                "formats": {"ids": 0.5, "mixed": 0.25, "text": 0.25},
            },
            "rec_sequence": {"max_history": 20},
            "children": {"max_children": 3},
            "next_items": {"k": 3, "min_count": 1},
            "search": {"max_k": 3},
            "recsplain": {"max_history": 8},
            "profile": {"max_history": 10},
        },
        "stages": {
            "align": {"mixture": {"align": 1.0}},
            "instruct": {
                "mixture": {
                    "recommend": 3,
                    "rec_sequence": 1,
                    "search": 1,
                    "recsplain": 1,
                    "profile": 1,
                    "align": 1,
                }
            },
        },
    }
