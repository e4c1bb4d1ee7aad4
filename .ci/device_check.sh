#!/usr/bin/env bash
# One GPU check of neo, run on the device machine (not by CI) with the working tree, `.whl` (wheels of
# what the machine lacks) and `.devdata` (amazon14_beauty) carried along:
#   bash .ci/device_check.sh
# Parts (each independent; one failing does not stop the others), logs under $OUT:
#   install      carried wheels into /tmp/site, neo mapped onto the travelled tree; versions -> check.log
#   kernels      tests/kernels/test_kernels_cuda.py (compiled Triton vs torch, CUDA vs CPU) -> kernels.log
#   scientific   `neo run pipeline experiment=scientific` on the GPU, every test user       -> scientific.log, scientific_*
#   beauty_eval  a carried Beauty checkpoint (.devdata/beauty_run) on every test user, SASRec
#                trained on the GPU side by side                                         -> beauty_eval.log, beauty_eval_*
#   bench        the decoding benchmark's measurements on the GPU                          -> bench_decoding.{log,json}
#   beauty       `neo run pipeline experiment=beauty` on the GPU                           -> beauty.log, beauty_*
# At most 8 files come back from a device call: choose PARTS accordingly.
# Environment: PARTS (default "install kernels bench beauty"; install always runs when /tmp/site is missing),
# SCIENTIFIC_ARGS / BEAUTY_EVAL_ARGS / BEAUTY_ARGS (extra Hydra overrides), SCIENTIFIC_TIMEOUT /
# BEAUTY_EVAL_TIMEOUT / BEAUTY_TIMEOUT (s, default 300), BENCH_TIMEOUT (s, default 240),
# BENCH_ITEMS / BENCH_BATCHES (default 100000,1000000 / 64,512), CHECK_BUDGET (s the whole script may take,
# default 510: each part's time limit shrinks to what is left), NEO_FROM (tree | wheel, default tree).
set -u
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
OUT=${OUT:-/tmp/neo_device_out}
mkdir -p "$OUT"
START=$(date +%s)
BUDGET=${CHECK_BUDGET:-510}
PARTS=${PARTS:-install kernels bench beauty}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1
export PYTHONSAFEPATH=1  # never import ./neo (the repo's top folder lacks neo.kernels etc.): /tmp/site's
export PYTHONPATH=/tmp/site
export NEO_CACHE_DIR=/tmp/neo_cache NEO_OUTPUT_ROOT=/tmp/neo_runs NEO_SHARED_DATA=$REPO/.devdata
SUMMARY=""

elapsed() { echo $(($(date +%s) - START)); }

# part NAME LOG LIMIT FUNCTION: run FUNCTION with $LIMIT = min(LIMIT, what the budget leaves), output
# appended to $OUT/LOG and shown; its status goes into the summary.
part() {
    local name=$1 log=$2 limit=$3 function=$4 room rc began
    room=$((BUDGET - $(elapsed) - 15))
    ((limit > room)) && limit=$room
    if ((limit < 20)); then
        echo "== $name: skipped, only $((BUDGET - $(elapsed))) s of the ${BUDGET} s budget left" | tee -a "$OUT/check.log"
        SUMMARY+="$name=skipped "
        return
    fi
    began=$(date +%s)
    echo "== $name: $(date -u '+%F %T') UTC, elapsed $(elapsed) s, limit $limit s" | tee -a "$OUT/check.log"
    LIMIT=$limit "$function" 2>&1 | tee -a "$OUT/$log"
    rc=${PIPESTATUS[0]}
    ((rc == 124 || rc == 137)) && rc="$rc(timeout)"
    echo "== $name: rc=$rc after $(($(date +%s) - began)) s (elapsed $(elapsed) s)" | tee -a "$OUT/check.log"
    SUMMARY+="$name=$rc "
}

wants() { [[ " $PARTS " == *" $1 "* ]]; }

do_install() {
    rm -rf /tmp/site && mkdir -p /tmp/site
    timeout -k 5 "$LIMIT" python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || return 1
    if [[ ${NEO_FROM:-tree} == tree ]]; then
        # the carried neo wheel is a snapshot: map neo.* onto the tree that travelled instead, the way
        # pyproject's package-dir does (kernels/ -> neo.kernels, eval/ -> neo.eval, ...)
        rm -rf /tmp/site/neo && mkdir /tmp/site/neo || return 1
        for entry in "$REPO"/neo/*; do ln -s "$entry" /tmp/site/neo/; done
        for pair in kernels:kernels eval:eval recipes:recipes conf:conf; do
            ln -s "$REPO/${pair%%:*}" "/tmp/site/neo/${pair##*:}"
        done
    fi
    echo "--- versions"
    python3 - <<'EOF'
import importlib.metadata as md
import platform
import sys

print("python", sys.version.split()[0], sys.executable, platform.machine())
for name in ("torch", "triton", "transformers", "tokenizers", "huggingface_hub", "safetensors", "numpy",
             "pyarrow", "pandas", "fsspec", "datasets", "dill", "multiprocess", "deepspeed", "pydantic",
             "pydantic_core", "typing_extensions", "hydra-core", "omegaconf", "faiss-cpu", "peft", "scipy",
             "regex", "setuptools", "neo-rec"):
    try:
        print(f"{name:18s} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name:18s} MISSING")
import torch

print("cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
    nvidia-smi -L
    echo "--- imports"
    timeout -k 5 120 python3 -c '
import neo, neo.kernels, neo.recipes.pipeline, neo.recipes.bench_decoding, neo.kernels.sid_mask_triton
import neo.kernels.bitmask_triton, neo.recipes.evaluate, neo.recipes.train, deepspeed, faiss, datasets
print("neo from", neo.__file__, "| kernels from", neo.kernels.__file__)
from neo.cli import available_recipes
print("recipes:", " ".join(available_recipes()))'
}

do_kernels() {
    # -v: one line per test as it ends, so a run cut by the time limit still shows which passed
    timeout -k 10 "$LIMIT" python3 -m pytest -v --tb=short -p no:cacheprovider -rs --durations=10 \
        tests/kernels/test_kernels_cuda.py
}

# The decoding benchmark's per-step measurements on the GPU (recipes/bench_decoding.py itself runs on the
# CPU only): the recipe's own row builders and HF baseline, with trie, state and logits on CUDA.
do_bench() {
    cat >/tmp/neo_bench_cuda.py <<'EOF'
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from transformers import LogitsProcessorList, PrefixConstrainedLogitsProcessor

from neo.decoding.beam import beam_search_items
from neo.decoding.processor import SIDConstraintLogitsProcessor
from neo.decoding.state import DecodeState, constrain, pick_tokens, row_type_masks
from neo.decoding.synthetic import random_sid_tables, tiny_llama
from neo.decoding.trie import ItemTrie
from neo.recipes.bench_decoding import dict_trie, hf_prefix_fn, step_rows
from neo.vocab import SIDVocab

ITEMS = [int(x) for x in os.environ.get("BENCH_ITEMS", "100000,1000000").split(",")]
BATCHES = [int(x) for x in os.environ.get("BENCH_BATCHES", "64,512").split(",")]
DEV = torch.device("cuda")


def gpu_ms(function, repeats, min_seconds=0.0):
    """Median wall time of `function` with a device sync after each call (a warm-up call first)."""
    function()
    torch.cuda.synchronize()
    times = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < 100 * repeats):
        begin = time.perf_counter()
        function()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - begin)
    return 1000 * statistics.median(times)


def graph_ms(function):
    """The same step captured once in a CUDA graph and replayed (the state machine never syncs)."""
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                function()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            function()
        return round(gpu_ms(graph.replay, 20, 0.25), 4)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return f"capture failed: {type(exc).__name__}: {str(exc)[:200]}"


torch.manual_seed(0)
rng = np.random.default_rng(0)
vocab = SIDVocab(50000, {"item": [256, 256, 256]})
rows = []
for items in ITEMS:
    tables = random_sid_tables(vocab, {"item": items}, seed=int(rng.integers(1 << 30)))
    begin = time.perf_counter()
    trie = ItemTrie.build(vocab, tables, DEV)
    trie.step  # noqa: B018
    torch.cuda.synchronize()
    build_s = time.perf_counter() - begin
    prefix_fn = hf_prefix_fn(vocab, dict_trie(vocab, tables["item"].codes))
    for batch in BATCHES:
        for mode in ("span", "mixed"):
            history = step_rows(vocab, tables["item"].codes, batch, mode, rng).to(DEV)
            logits = torch.randn(batch, vocab.total_size, device=DEV)
            state = DecodeState.from_suffix(history, trie, row_type_masks(trie, ["item"], batch))
            tokens = pick_tokens(logits, constrain(logits.clone(), state, trie), state, trie)

            def neo_step(state=state, tokens=tokens, logits=logits):
                constrain(logits, state, trie)
                state.advance(tokens, trie)

            neo_ms = gpu_ms(neo_step, 20, 0.25)
            neo_graph_ms = graph_ms(neo_step)
            triton_ms = gpu_ms(lambda state=state, logits=logits: state.mask_(logits, trie), 20, 0.25)
            torch_ms = gpu_ms(
                lambda state=state, logits=logits: state.mask_(logits, trie, backend="torch"), 20, 0.25
            )
            bf16 = logits.to(torch.bfloat16)
            triton_bf16_ms = gpu_ms(lambda state=state, bf16=bf16: state.mask_(bf16, trie), 20, 0.25)
            hf = PrefixConstrainedLogitsProcessor(prefix_fn, num_beams=1)
            hf_ms = gpu_ms(lambda hf=hf, history=history, logits=logits: hf(history, logits), 3)
            row = {
                "batch": batch, "items": items, "vocab": vocab.total_size, "mode": mode,
                "neo_ms": round(neo_ms, 4), "neo_graph_ms": neo_graph_ms, "hf_ms": round(hf_ms, 3),
                "speedup": round(hf_ms / neo_ms, 1),
                "full_row_mask_triton_ms": round(triton_ms, 4),
                "full_row_mask_triton_bf16_ms": round(triton_bf16_ms, 4),
                "full_row_mask_torch_ms": round(torch_ms, 4),
                "trie_build_s": round(build_s, 3), "trie_mb": round(trie.nbytes() / 2**20, 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

# top-10 beam search (beam 30) on a tiny random Llama, as in the recipe's bench_beam, on the GPU
tables = random_sid_tables(vocab, {"item": 100_000}, seed=0)
trie = ItemTrie.build(vocab, tables, DEV)
model = tiny_llama(vocab.total_size, seed=0).to(DEV)
prompts = torch.randint(0, vocab.base_size, (4, 32), generator=torch.Generator().manual_seed(0)).to(DEV)
prompts[:, -1] = vocab.open_id("item")
hf_kwargs = {"max_new_tokens": 3, "num_beams": 30, "num_return_sequences": 10, "do_sample": False,
             "pad_token_id": 0, "eos_token_id": None, "early_stopping": False}
processor = LogitsProcessorList([SIDConstraintLogitsProcessor(trie, ["item"])])
with torch.no_grad():
    constrained = gpu_ms(lambda: model.generate(prompts, logits_processor=processor, **hf_kwargs), 5)
    unconstrained = gpu_ms(lambda: model.generate(prompts, **hf_kwargs), 5)
    neo_beam = gpu_ms(lambda: beam_search_items(model, prompts[:, :-1], None, trie, ["item"] * 4, k=10,
                                                beam_width=30), 5)
row = {"mode": "beam", "batch": 4, "items": 100_000, "vocab": vocab.total_size, "k": 10, "beam_width": 30,
       "constrained_ms": round(constrained, 2), "unconstrained_ms": round(unconstrained, 2),
       "ratio": round(constrained / unconstrained, 3), "neo_beam_ms": round(neo_beam, 2),
       "neo_ratio": round(neo_beam / unconstrained, 3)}
rows.append(row)
print(json.dumps(row), flush=True)
with open(sys.argv[1], "w") as f:
    json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, f, indent=1)
print("wrote", sys.argv[1])
EOF
    timeout -k 10 "$LIMIT" python3 /tmp/neo_bench_cuda.py "$OUT/bench_decoding.json"
}

# `neo run RECIPE` with the device's paths and the GPU; overrides after the recipe name come last (they win).
neo_run() {
    local recipe=$1
    shift
    timeout -k 15 "$LIMIT" python3 -c 'import sys; from neo.cli import main; sys.exit(main())' \
        run "$recipe" "paths.shared_data=$REPO/.devdata" paths.cache_dir=/tmp/neo_cache \
        paths.output_root=/tmp/neo_runs device=cuda "$@"
}

# The words of $1 as Hydra overrides in ARGS, split like a shell command line (quote one with spaces in
# it: "'tasks.stages.instruct.mixture={rec_sequence: 1.0}' stages.instruct.max_steps=800"); no globbing,
# so [a,b] lists are safe.
split_overrides() {
    set -f
    eval "ARGS=(${1:-})" || { set +f; return 2; }
    set +f
}

do_beauty() {
    local rc
    split_overrides "${BEAUTY_ARGS:-}" || return 2
    rm -rf /tmp/neo_runs/beauty  # skip_done would reuse an earlier run's stages on a warm machine
    # SASRec (the experiment's third baseline) is left out unless BEAUTY_ARGS names eval.rec_baselines again
    echo "extra overrides: ${ARGS[*]:-(none)}"
    neo_run pipeline experiment=beauty logger=none progress=false 'eval.rec_baselines=[popularity,cooccurrence]' \
        "${ARGS[@]}"
    rc=$?
    local run=/tmp/neo_runs/beauty
    [[ -f $run/eval/metrics.json ]] && cp "$run/eval/metrics.json" "$OUT/beauty_metrics.json"
    [[ -f $run/eval/report.md ]] && cp "$run/eval/report.md" "$OUT/beauty_report.md"
    [[ -f $run/instruct/metrics.jsonl ]] && cp "$run/instruct/metrics.jsonl" "$OUT/beauty_train.jsonl"
    for stage in align instruct; do
        [[ -f $run/$stage/metrics.jsonl ]] && { echo "--- $stage/metrics.jsonl (last 3)"; tail -n 3 "$run/$stage/metrics.jsonl"; }
    done
    echo "--- run folder"
    find "$run" -maxdepth 2 -not -path '*/.hydra*' 2>/dev/null | sort | head -60
    return $rc
}

# A checkpoint trained elsewhere (the CPU Beauty run), evaluated on every test user with SASRec trained on the
# GPU side by side in the same process: carry the run folder (align/ and instruct/ metrics, instruct/
# checkpoint, sids/) as .devdata/beauty_run. BEAUTY_EVAL_ARGS: extra Hydra overrides.
do_beauty_eval() {
    local run=$REPO/.devdata/beauty_run rc
    [[ -f $run/instruct/neo.json ]] || { echo "no checkpoint at $run/instruct"; return 2; }
    split_overrides "${BEAUTY_EVAL_ARGS:-}" || return 2
    rm -rf "$run/eval"
    neo_run evaluate experiment=beauty "output_dir=$run" eval.settings.max_users=null eval.settings.batch_size=128 \
        'eval.rec_baselines=[popularity,cooccurrence,sasrec]' +eval.sasrec.device=cuda "${ARGS[@]}"
    rc=$?
    [[ -f $run/eval/metrics.json ]] && cp "$run/eval/metrics.json" "$OUT/beauty_eval_metrics.json"
    [[ -f $run/eval/report.md ]] && cp "$run/eval/report.md" "$OUT/beauty_eval_report.md"
    return $rc
}

# The scientific preset end to end on the GPU (training included), every test user, SASRec on the GPU.
# SCIENTIFIC_ARGS: extra Hydra overrides.
do_scientific() {
    local run=/tmp/neo_runs/scientific rc
    split_overrides "${SCIENTIFIC_ARGS:-}" || return 2
    rm -rf "$run"
    neo_run pipeline experiment=scientific logger=none progress=false eval.settings.max_users=null \
        eval.settings.batch_size=128 +eval.sasrec.device=cuda "${ARGS[@]}"
    rc=$?
    [[ -f $run/eval/metrics.json ]] && cp "$run/eval/metrics.json" "$OUT/scientific_metrics.json"
    if [[ -d $run ]]; then  # the run's text outputs (no weights) in one file
        tar czf "$OUT/scientific_run.tgz" -C /tmp/neo_runs --exclude='*.safetensors' --exclude='*.pt' \
            --exclude='checkpoints' --exclude='tokenizer.json' scientific
    fi
    return $rc
}

echo "device check: $(date -u '+%F %T') UTC, parts: $PARTS, budget ${BUDGET} s" | tee "$OUT/check.log"
if wants install || [[ ! -d /tmp/site/neo ]]; then part install check.log 120 do_install; fi
wants kernels && part kernels kernels.log 120 do_kernels
wants scientific && part scientific scientific.log "${SCIENTIFIC_TIMEOUT:-300}" do_scientific
wants beauty_eval && part beauty_eval beauty_eval.log "${BEAUTY_EVAL_TIMEOUT:-300}" do_beauty_eval
wants bench && part bench bench_decoding.log "${BENCH_TIMEOUT:-240}" do_bench
wants beauty && part beauty beauty.log "${BEAUTY_TIMEOUT:-300}" do_beauty
echo "SUMMARY: ${SUMMARY}total $(elapsed) s" | tee -a "$OUT/check.log"
ls -la "$OUT"
