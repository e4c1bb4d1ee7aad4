"""The lexical prior: BM25 masses by hand, fused beam scores equal brute force, added items, settings."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from neo.data.catalog import Catalog
from neo.decoding.beam import beam_search_items
from neo.decoding.lexical import (
    INDEX_FILE,
    FieldCounts,
    IndexFit,
    IndexSettings,
    LexicalPrior,
    LexicalSettings,
    fit_index,
)
from neo.tasks.search import Query

from ..data.helpers import write_dataset
from .test_beam import brute_force

WORDS = ["amber", "basalt", "cobalt", "dune", "ember"]


def item_text(n: int) -> str:
    """Two of five words per item, and one word of its own (`own7`), so queries match groups and singles."""
    return f"{WORDS[n % 5]} {WORDS[(n * 2 + 1) % 5]} own{n}"


@pytest.fixture(scope="module")
def lexical(tables) -> LexicalPrior:
    return LexicalPrior({t: {i: item_text(n) for n, i in enumerate(table.item_ids)} for t, table in tables.items()})


def bm25(query: list[str], docs: list[list[str]], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """Lucene's BM25 by its formula: idf = ln(1 + (N - df + 0.5) / (df + 0.5)) times the length-normalised
    tf / (tf + k1 * (1 - b + b * len / average len)) (Lucene drops the classic (k1 + 1) factor)."""
    n, average = len(docs), sum(len(d) for d in docs) / len(docs)
    scores = []
    for doc in docs:
        score = 0.0
        for term in query:
            df = sum(term in d for d in docs)
            tf = doc.count(term)
            if tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * tf / (tf + k1 * (1 - b + b * len(doc) / average))
        scores.append(score)
    return scores


def expected_mass(ids: list[str], query: str, settings: LexicalSettings) -> dict[str, float]:
    """q by hand over a type's items `ids` (in table order, so item n's text is `item_text(n)`):
    (1 - s) * softmax(bm25 / T) over items sharing a word, plus s / M everywhere."""
    docs = [item_text(n).lower().split() for n in range(len(ids))]
    scores = bm25(query.lower().split(), docs)
    hits = {i: s for i, s in zip(ids, scores, strict=True) if s > 0}
    if not hits:
        return {i: 1 / len(ids) for i in ids}
    top = dict(sorted(hits.items(), key=lambda kv: -kv[1])[: settings.top])
    norm = sum(math.exp(s / settings.temperature) for s in top.values())
    return {
        i: settings.smoothing / len(ids)
        + ((1 - settings.smoothing) * math.exp(top[i] / settings.temperature) / norm if i in top else 0.0)
        for i in ids
    }


@pytest.mark.parametrize(("query", "top"), [("amber cobalt", 100), ("own3 dune", 1), ("nothing matches", 6)])
def test_leaf_masses_are_bm25_softmax_mixed_with_uniform(lexical, tables, trie, query, top) -> None:
    settings = LexicalSettings(smoothing=0.2, temperature=0.5, top=top)  # top 1: the item with `own3` alone
    mass = lexical.leaf_mass(trie, [query, query], ["a", "b"], settings)
    for row, entity_type in enumerate(["a", "b"]):
        ids = tables[entity_type].item_ids
        leaves = torch.tensor(trie.leaves_of(entity_type, ids))
        expected = expected_mass(ids, query, settings)
        torch.testing.assert_close(mass[row, leaves], torch.tensor([expected[i] for i in ids]))
        assert float(mass[row].sum()) == pytest.approx(1.0)  # nothing outside the request's type


def test_fused_search_scores_equal_brute_force(bigram, vocab, tables, trie, lexical) -> None:
    settings = LexicalSettings(weight=0.8, smoothing=0.1, temperature=1.0)
    queries = ["basalt own5", "ember"]
    fusion = lexical.fusion(trie, queries, ["a", "b"], settings)
    hits = beam_search_items(bigram, torch.tensor([[1, 2], [3, 4]]), None, trie, ["a", "b"], k=12,
                             beam_width=60, prior=fusion)
    for request, (entity_type, query) in enumerate(zip(["a", "b"], queries, strict=True)):
        model = brute_force(bigram, vocab, tables[entity_type], vocab.open_id(entity_type), "full")
        q = expected_mass(tables[entity_type].item_ids, query, settings)
        expected = {i: model[i] + 0.8 * math.log(q[i]) for i in model}
        best = sorted(expected, key=expected.get, reverse=True)[:12]
        assert [h.item_id for h in hits[request]] == best
        for hit in hits[request]:
            assert math.isclose(hit.score, expected[hit.item_id], abs_tol=1e-4)


def test_a_heavy_prior_finds_the_item_by_its_own_word(bigram, tables, trie, lexical) -> None:
    target = tables["b"].item_ids[17]
    fusion = lexical.fusion(trie, ["own17"], ["b"], LexicalSettings(weight=20.0))
    hits = beam_search_items(bigram, torch.tensor([[1, 2]]), None, trie, ["b"], k=3, beam_width=8, prior=fusion)
    assert hits[0][0].item_id == target


def test_items_added_later_are_indexed_by_their_titles(tables, trie, lexical) -> None:
    ids = tables["a"].item_ids
    grown = lexical.with_items("a", {ids[4]: "zircon"})  # an item the index did not hold, in the trie
    b_texts = {i: item_text(n) for n, i in enumerate(tables["b"].item_ids)}
    shrunk = LexicalPrior({"a": {i: item_text(n) for n, i in enumerate(ids) if i != ids[4]}, "b": b_texts})
    before = shrunk.leaf_mass(trie, ["zircon"], ["a"], LexicalSettings())
    after = shrunk.with_items("a", {ids[4]: "zircon"}).leaf_mass(trie, ["zircon"], ["a"], LexicalSettings())
    leaf = trie.leaves_of("a", [ids[4]])[0]
    assert float(before[0, leaf]) == pytest.approx(1 / len(ids))  # unknown word: uniform
    assert float(after[0, leaf]) == pytest.approx(0.9 + 0.1 / len(ids))
    assert float(shrunk.leaf_mass(trie, ["zircon"], ["a"], LexicalSettings())[0, leaf]) == pytest.approx(1 / len(ids))
    assert grown.terms("a", ids[4]) == {"zircon": 1}  # re-indexed by its new title
    assert lexical.terms("a", ids[4]) == Counter(item_text(4).split())  # "ember ember own4"
    with pytest.raises(KeyError, match="'nope' is not in the 'a' search index"):
        lexical.terms("a", "nope")


def test_additions_are_weighted_with_the_index_statistics_until_a_rebuild_is_due() -> None:
    base = {f"i{n}": f"{WORDS[n % 5]} {WORDS[(n + 2) % 5]} filler" for n in range(20)}
    prior = LexicalPrior({"t": base})
    grown = prior.with_items("t", {"new": "amber amber zircon"})
    index = grown._index("t")
    assert index.built == 20 and index.ids[-1] == "new"  # weighted in place, not rebuilt
    average = 3.0  # every base item has 3 words
    for word, tf, df in (("amber", 2, 9), ("zircon", 1, 1)):  # amber: 8 base items + the new one
        idf = math.log(1 + (21 - df + 0.5) / (df + 0.5))
        expected = idf * tf / (tf + 1.5 * (1 - 0.75 + 0.75 * 3 / average))
        assert index.weights[20, index.vocab[word]] == pytest.approx(expected, rel=1e-6)
    assert prior._index("t").weights.shape[0] == 20  # the original is untouched
    items, _ = grown._top_scores("t", ["zircon"], 5)[0]
    assert [index.ids[i] for i in items] == ["new"]
    again = grown.with_items("t", {"late": "zircon", "later": "basalt"})  # grown by 3 > 10% of 20: rebuilt
    assert again._index("t").built == 23
    items, _ = again._top_scores("t", ["zircon"], 5)[0]
    assert sorted(again._index("t").ids[i] for i in items) == ["late", "new"]


def test_zero_weight_rows_keep_the_models_scores(bigram, tables, trie, lexical) -> None:
    prompts = torch.tensor([[1, 2], [1, 2]])
    fusion = lexical.fusion(trie, ["ember", "ember"], ["b", "b"], LexicalSettings(), weights=[0.0, 5.0])
    fused = beam_search_items(bigram, prompts, None, trie, ["b", "b"], k=5, beam_width=20, prior=fusion)
    alone = beam_search_items(bigram, prompts[:1], None, trie, ["b"], k=5, beam_width=20)
    assert [(h.item_id, round(h.score, 4)) for h in fused[0]] == [(h.item_id, round(h.score, 4)) for h in alone[0]]
    assert [h.item_id for h in fused[1]] != [h.item_id for h in alone[0]]


def test_settings_errors_name_the_field() -> None:
    for options, says in [
        ({"weight": -1}, "lexical.weight must be >= 0"),
        ({"smoothing": 0}, r"lexical.smoothing must lie in \(0, 1\]"),
        ({"temperature": 0}, "lexical.temperature must be > 0"),
        ({"top": 0}, "lexical.top must be >= 1"),
        ({"wieght": 1}, r"unknown key\(s\) \['wieght'\]"),
    ]:
        with pytest.raises(ValueError, match=says):
            LexicalSettings.from_config(options)
    assert LexicalSettings.from_config(None) == LexicalSettings()


def _title_catalog(tmp_path) -> tuple[Catalog, list[Query]]:
    """Six products whose descriptions each praise the next product's title twice: over one concatenated
    text BM25 ranks that neighbour above the product a title query names."""
    colors = ["red", "green", "blue", "amber", "violet", "ochre"]
    things = ["lamp", "chair", "desk", "shelf", "stool", "bench"]
    items, queries = [], []
    for n, (color, thing) in enumerate(zip(colors, things, strict=True)):
        praised = f"{colors[(n + 1) % 6]} {things[(n + 1) % 6]}"
        items.append({"id": f"p{n}", "type": "product", "title": f"{color} {thing}",
                      "text": f"pairs well with {praised}, {praised} fans love it"})
        queries.append(Query(f"q{n}", f"{color} {thing}", "product", [f"p{n}"], "train", False))
    tables = {"items": items, "users": [{"id": "u"}], "interactions": [{"user": "u", "item": "p0", "timestamp": 1}]}
    return Catalog.load(write_dataset(tmp_path / "d", tables, types=("product",))), queries


def test_the_fit_counts_the_title_as_often_as_the_training_queries_need(tmp_path) -> None:
    catalog, queries = _title_catalog(tmp_path)
    fit = fit_index(catalog, ["product"], queries, IndexSettings(title_weights=(1, 2, 3, 5)))
    assert fit.ndcg[1] == pytest.approx(1 / math.log2(3))  # every target second, behind the item praising it
    assert fit.title_weight == 3 and fit.ndcg[3] == fit.ndcg[5] == 1.0  # a tie goes to the smaller weight
    assert fit.queries == 6
    prior = LexicalPrior.from_catalog(catalog, ["product"], title_weight=fit.title_weight)
    items, scores = prior._top_scores("product", ["red lamp"], 1)[0]
    assert prior._index("product").ids[int(items[0])] == "p0"
    assert fit_index(catalog, ["product"], [], IndexSettings()) == IndexFit()  # no queries: the title counts once
    assert fit_index(catalog, ["brand"], queries, IndexSettings()).title_weight == 1  # none of these types


def test_counting_each_field_once_gives_the_index_of_the_joined_texts(tmp_path) -> None:
    """The fit scores every weight from one count of titles and of the rest (`rest + w * title`): the same
    weights, lengths and scores as indexing the text with its title written `w` times."""
    catalog, _ = _title_catalog(tmp_path)
    fields = FieldCounts.of(catalog, "product")
    queries = ["red lamp", "lamp fans", "violet stool pairs well", "ochre"]
    for weight in (1, 2, 5):
        counted = LexicalPrior.from_counts({"product": fields.at(weight)}, weight)
        joined = LexicalPrior.from_catalog(catalog, ["product"], title_weight=weight)
        assert counted._index("product").ids == joined._index("product").ids
        np.testing.assert_array_equal(counted._index("product").lengths, joined._index("product").lengths)
        for (items_a, scores_a), (items_b, scores_b) in zip(counted._top_scores("product", queries, 6),
                                                            joined._top_scores("product", queries, 6), strict=True):
            assert dict(zip(items_a.tolist(), scores_a.tolist(), strict=True)) == pytest.approx(
                dict(zip(items_b.tolist(), scores_b.tolist(), strict=True)), rel=1e-6)


def test_items_tied_at_the_cut_are_kept_in_catalog_order() -> None:
    """Of equal scores the earlier items make the top, whatever order the index met the words in."""
    for first, second in (("lamp", "shade"), ("shade", "lamp")):
        prior = LexicalPrior({"product": {f"p{n}": f"{first} {second} own{n}" for n in range(7)}})
        items, scores = prior._top_scores("product", ["lamp shade"], 3)[0]
        assert sorted(prior._index("product").ids[i] for i in items) == ["p0", "p1", "p2"]
        assert len(set(scores.tolist())) == 1  # a seven-way tie


def test_the_fit_survives_its_file_and_a_bad_file_is_named(tmp_path) -> None:
    path = tmp_path / INDEX_FILE
    IndexFit(3, {1: 0.5, 3: 0.75}, 40).save(path)
    assert IndexFit.load(path) == IndexFit(3, {1: 0.5, 3: 0.75}, 40)
    path.write_text('{"title_weight": 0}')
    with pytest.raises(ValueError, match=f"{INDEX_FILE}: title_weight: expected an integer >= 1, got 0"):
        IndexFit.load(path)
    path.write_text("{")
    with pytest.raises(ValueError, match=f"{INDEX_FILE}: not a readable search index file"):
        IndexFit.load(path)
    with pytest.raises(ValueError, match=r"search_index.title_weights: expected integers >= 1, got \[0, 2\]"):
        IndexSettings.from_config({"title_weights": [0, 2]})
    with pytest.raises(ValueError, match=r"search_index.title_weights: expected integers >= 1, got \['x'\]"):
        IndexSettings.from_config({"title_weights": ["x"]})
    assert IndexSettings.from_config({"title_weights": [1, 4]}).title_weights == (1, 4)


def test_items_added_later_count_their_titles_as_often_as_the_index_does() -> None:
    prior = LexicalPrior({"t": {f"i{n}": f"{WORDS[n % 5]} filler" for n in range(20)}}, title_weight=3)
    grown = prior.with_items("t", {"new": "zircon lamp"})
    assert grown.terms("t", "new") == {"zircon": 3, "lamp": 3}
    index = grown._index("t")
    assert index.weights[20, index.vocab["zircon"]] > 0
    with pytest.raises(ValueError, match="title_weight must be >= 1"):
        LexicalPrior({}, title_weight=0)


def test_the_index_scores_as_bm25s_does_and_reweighs_exactly_after_growth() -> None:
    """neo weighs terms itself (to reweigh without the texts); its scores must stay the BM25 baseline's."""
    from neo.decoding.lexical import import_bm25s

    bm25s = import_bm25s()
    texts = [f"{WORDS[n % 5]} {WORDS[(n * 3) % 5]} {WORDS[(n * 3) % 5]} the of item{n % 7}" for n in range(30)]
    texts[4] = "the of and"  # nothing but stopwords
    queries = ["amber cobalt", "item3 dune dune", "ember"]

    def reference(docs: list[str]) -> list[list[float]]:
        engine = bm25s.BM25()
        engine.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
        tokens = bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)
        return [engine.get_scores(words).tolist() for words in tokens]

    def scores(prior: LexicalPrior, count: int) -> list[list[float]]:
        out = []
        for items, values in prior._top_scores("t", queries, count):
            row = [0.0] * count
            for item, value in zip(items.tolist(), values.tolist(), strict=True):
                row[int(prior._index("t").ids[item][1:])] = value
            out.append(row)
        return out

    prior = LexicalPrior({"t": {f"i{n}": text for n, text in enumerate(texts)}})
    for ours, theirs in zip(scores(prior, 30), reference(texts), strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    extra = [f"{WORDS[n % 5]} novel{n}" for n in range(5)]  # +5 > 10% of 30: every item reweighed
    grown = prior.with_items("t", {f"i{30 + n}": text for n, text in enumerate(extra)})
    assert grown._index("t").built == 35
    for ours, theirs in zip(scores(grown, 35), reference(texts + extra), strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
