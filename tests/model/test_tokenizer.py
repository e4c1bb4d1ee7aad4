"""The tiny preset's tokenizer: trained on the catalog and on neo's own prompts, cached per content."""

from __future__ import annotations

from pathlib import Path

from neo.data import Catalog
from neo.model.tokenizer import catalog_corpus, dataset_tokenizer, train_tokenizer
from neo.tasks.prompts import ChatFormat, prompt_corpus, rec_sequence_prompt, recommend_prompt, templates


def test_prompt_corpus_renders_train_templates_for_every_type_and_leaves_heldout_out():
    corpus = prompt_corpus(["show", "episode"])
    assert "Recommend 10 shows for this user." in corpus and "Recommend an episode for this user." in corpus
    assert not any("{" in text for text in corpus)  # every placeholder filled
    heldout = {t.split("{")[0] for task in ("recommend", "search") for t in templates(task, "heldout")}
    assert not any(text.startswith(prefix) for prefix in heldout if len(prefix) > 12 for text in corpus)


def test_prompts_become_whole_word_tokens(mini_world: tuple[Path, Path]):
    catalog = Catalog.load(mini_world[0])
    tokenizer = dataset_tokenizer(catalog, 400, with_prompts=True)
    catalog_only = train_tokenizer(catalog_corpus(catalog), 400)
    chat = ChatFormat.from_tokenizer(tokenizer)
    for prompt, most in (
        (rec_sequence_prompt(chat=chat), 0.75),
        (recommend_prompt("", "episode", k=10, chat=chat, template=3), 0.75),
        (recommend_prompt("", "episode", k=10, chat=chat, template=1, pool="heldout"), 0.85),
    ):
        ours, before = len(tokenizer(prompt)["input_ids"]), len(catalog_only(prompt)["input_ids"])
        assert ours < most * before, (prompt, ours, before)
    assert tokenizer.tokenize(" this user") == ["Ġthis", "Ġuser"]


def test_tokenizer_is_cached_and_reused(mini_world: tuple[Path, Path]):
    catalog = Catalog.load(mini_world[0])
    first, second = dataset_tokenizer(catalog, 400, True), dataset_tokenizer(catalog, 400, True)
    assert first.get_vocab() == second.get_vocab() and len(first) == 400
    assert dataset_tokenizer(catalog, 360, True).get_vocab() != first.get_vocab()
    catalog_only = dataset_tokenizer(catalog, 400)  # the default: the catalog's text alone
    assert catalog_only.get_vocab() == train_tokenizer(catalog_corpus(catalog), 400).get_vocab()
