"""A byte-level BPE tokenizer trained on one dataset's own text, for the `tiny` preset.

A tiny model has no pretrained tokenizer worth its embedding cost: a few thousand merges learned from
the catalog's titles, descriptions, queries and profiles (and, if asked, neo's own prompt templates)
cover its text in short sequences, which is what makes a 2-core quickstart fast. Byte-level
pre-tokenisation means no text is ever out of vocabulary. Trained once per dataset content, prompt set
and vocabulary size, then cached under `$NEO_CACHE_DIR/tokenizers/`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from neo.data import Catalog
from neo.data.catalog import cache_root
from neo.tasks.prompts import prompt_corpus

# The same chat markers as SmolLM2, so prompts built with `apply_chat_template` look alike on both presets.
BOS, EOS, PAD = "<|im_start|>", "<|im_end|>", "<|pad|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, "<|endoftext|>"]
# Part of the cache key: bump it when `training_corpus` changes what a tokenizer is trained on.
CORPUS_RECIPE = "catalog+prompts, balanced"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def catalog_corpus(catalog: Catalog) -> Iterator[str]:
    """Every piece of free text in the catalog: what the tiny model will read and write."""
    for entity in catalog.spec.entity_types:
        yield f"{entity.name} {entity.description}"
    yield from catalog.items["title"]
    yield from (text for text in catalog.items["text"] if text)
    if catalog.queries is not None:
        yield from catalog.queries["text"]
    if catalog.profiles is not None:
        yield from catalog.profiles["text"]


def training_corpus(catalog: Catalog) -> Iterator[str]:
    """The catalog's text and neo's prompt words, the smaller side repeated to match the larger.

    Every training example carries a prompt, so its words are about as frequent in what the model
    reads as the catalog's; at equal weight BPE learns both as whole tokens, and neither a text-less
    catalog (Beauty) nor a tiny one loses its words to the other.
    """
    texts, prompts = list(catalog_corpus(catalog)), _prompts(catalog)
    for _ in range(max(1, len(prompts) // max(1, len(texts)))):
        yield from texts
    for _ in range(max(1, len(texts) // len(prompts))):
        yield from prompts


def _prompts(catalog: Catalog) -> list[str]:
    return prompt_corpus(catalog.type_names)


def _cache_key(catalog: Catalog, vocab_size: int, with_prompts: bool) -> str:
    """Changes whenever the catalog's text tables, the requested size or (when in) neo's prompts change."""
    parts = [catalog.name, str(vocab_size)]
    if with_prompts:
        parts += [CORPUS_RECIPE, *_prompts(catalog)]
    for table in (catalog.items, catalog.queries, catalog.profiles):
        parts.append(table._fingerprint if table is not None else "-")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def train_tokenizer(texts: Iterator[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of `vocab_size` tokens (special tokens included) on `texts`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token="<|endoftext|>"
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def dataset_tokenizer(catalog: Catalog, vocab_size: int, with_prompts: bool = False) -> PreTrainedTokenizerFast:
    """The cached tokenizer of this catalog, trained on first use (an atomic directory rename).

    `with_prompts` adds neo's prompt templates to the corpus (`training_corpus`): prompts shrink ~3x
    on a catalog without text (Beauty: 60 -> 21 tokens), so a step holds more examples. Off by
    default: neither Beauty (NDCG@10 0.0265 vs 0.0278) nor the demo world measured a gain from it.
    """
    key = _cache_key(catalog, vocab_size, with_prompts)
    target = cache_root() / "tokenizers" / f"{catalog.name}-{key}"
    if not (target / "tokenizer.json").exists():
        corpus = training_corpus(catalog) if with_prompts else catalog_corpus(catalog)
        tokenizer = train_tokenizer(corpus, vocab_size)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race and its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return PreTrainedTokenizerFast.from_pretrained(target)
