"""A random-weight checkpoint over a real catalog, for serving tests and serving benchmarks.

Serving behaviour (batching, validation, latency) does not depend on what the weights learned: the
constrained decoder guarantees every named item exists whatever the logits are. So a tiny Llama with
random weights, the tiny preset's byte-level BPE tokenizer, and random unique SID codes
make a complete, loadable checkpoint in about a second, without training or downloads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from neo.data.catalog import Catalog
from neo.data.splits import make_split
from neo.decoding.prior import PRIOR_FILE, ItemPrior
from neo.decoding.synthetic import random_codes
from neo.io import write_json
from neo.sids.table import SIDS_DIR, SIDTable, save_tables
from neo.vocab import SIDVocab, attach_to_tokenizer


def write_random_checkpoint(
    out_dir: str | os.PathLike,
    catalog_dir: str | os.PathLike,
    codebook_sizes: Mapping[str, tuple[int, ...]] | None = None,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    context_length: int = 1024,
) -> Path:
    """Write a loadable neo checkpoint (HF model + tokenizer, neo_vocab.json, sids/, item prior, neo.json).

    The model and tokenizer are the `tiny` preset's (neo.model.presets.build_tiny), and the transition
    prior is counted over the catalog's training split as training would, so serving numbers measured
    on this checkpoint hold for a trained tiny checkpoint of the same size.
    """
    from neo.model.presets import build_tiny

    out, catalog = Path(out_dir), Catalog.load(catalog_dir)
    rng = np.random.default_rng(seed)
    tables = {}
    for entity_type in catalog.type_names:
        ids = catalog.item_ids(entity_type)
        if not ids:
            continue
        sizes = tuple((codebook_sizes or {}).get(entity_type, (16, 16, 16)))
        tables[entity_type] = SIDTable(
            entity_type, ids, random_codes(len(ids), sizes, rng), sizes, {"method": "random", "seed": seed}
        )
    model, tokenizer = build_tiny(
        catalog,
        tokenizer_vocab_size=512,
        hidden_size=hidden_size,
        num_layers=layers,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=context_length,
        tie_word_embeddings=True,
        seed=seed,
    )
    vocab = SIDVocab(len(tokenizer), {t: table.codebook_sizes for t, table in tables.items()})
    attach_to_tokenizer(tokenizer, vocab)
    model.resize_token_embeddings(vocab.total_size, mean_resizing=False)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    vocab.save(out)
    save_tables(out / SIDS_DIR, tables)
    ItemPrior.from_split(catalog, make_split(catalog), list(tables)).save(out / PRIOR_FILE)
    write_json(
        out / "neo.json",
        {  # the layout `neo run train` writes (dataset name, stage, resolved config)
            "dataset": catalog.name,
            "stage": "random",
            "config": {
                "data": {"name": catalog.name, "path": str(Path(catalog_dir).resolve())},
                "seed": seed,
            },
        },
    )
    return out
