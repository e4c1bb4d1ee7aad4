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

# The decoding benchmark on the GPU: the recipe with device=cuda (adds CUDA-graph replay and Triton vs
# torch full-row masks to each row).
do_bench() {
    neo_run bench_decoding "output_dir=$OUT" "items=[${BENCH_ITEMS:-100000,1000000}]" \
        "batches=[${BENCH_BATCHES:-64,512}]"
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
