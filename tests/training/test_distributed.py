"""Two CPU processes (gloo) under ZeRO-2 end a few steps with bit-identical weights on both ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WORKER = textwrap.dedent("""
    import hashlib, json, sys
    import datasets, numpy as np, torch, torch.distributed as dist
    from neo.data import Catalog
    from neo.model import adapt_model, load_base_model
    from neo.sids.table import load_tables
    from neo.training import Engine, TrainSettings, prepare_for_stage
    from neo.vocab import SIDVocab

    catalog_dir, sids_dir, out_dir, trainable = sys.argv[1:5]
    catalog, tables = Catalog.load(catalog_dir), load_tables(sids_dir)
    model, tokenizer = load_base_model(json.loads(sys.argv[5]), catalog)
    vocab = SIDVocab(len(tokenizer), {t: table.codebook_sizes for t, table in tables.items()})
    adapt_model(model, tokenizer, vocab, catalog, tables)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, vocab.total_size, (16, 20)).tolist()
    rows = datasets.Dataset.from_dict({"input_ids": ids, "labels": ids, "attention_mask": [[1] * 20] * 16})
    settings = TrainSettings(lr=1e-2, micro_batch_size=2, grad_accum=2, max_steps=3, log_every=1)
    engine = Engine(prepare_for_stage(model, vocab, {"trainable": trainable}), rows, out_dir, settings,
                    {"stage": 2}, tokenizer.pad_token_id, progress=False)
    metrics = engine.train()
    digest = hashlib.sha256()
    for name, parameter in sorted(engine.engine.module.named_parameters()):
        digest.update(name.encode() + parameter.detach().cpu().numpy().tobytes())
    with open(f"{out_dir}/rank{dist.get_rank()}.json", "w") as handle:
        json.dump({"digest": digest.hexdigest(), "batches": engine.micro_batches(0), "losses":
                   [m["loss"] for m in metrics]}, handle)
""")


TINY = {
    "preset": "tiny",
    "tokenizer_vocab_size": 400,
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "num_kv_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
    "seed": 0,
}


def run_two_ranks(mini_world, out: Path, trainable: str) -> list[dict]:
    catalog_dir, sids_dir = mini_world
    script = out / "worker.py"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(WORKER)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(catalog_dir),
            str(sids_dir),
            str(out),
            trainable,
            json.dumps(TINY),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_two_process_zero2_ends_with_identical_weights(mini_world, tmp_path):
    first, second = run_two_ranks(mini_world, tmp_path / "full", "full")
    assert first["batches"] != second["batches"]  # each rank saw its own rows
    assert first["losses"] == second["losses"]  # the logged loss is the all-reduced mean
    assert first["digest"] == second["digest"]
