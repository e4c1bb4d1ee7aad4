"""Checkpoints: the final HF directory of a stage, and periodic resumable training states.

A stage directory `<output_dir>/<stage>/` ends up as a normal Hugging Face checkpoint plus neo's
files (`neo_vocab.json`, `sids/`, `neo.json`). `neo.json` is moved in last: a directory without it
is an unfinished stage, which is how the next stage tells a finished `align` from a killed one.
Training states live in `<stage dir>/checkpoints/step-<N>/`, written to a temp folder and renamed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from neo.io import write_json
from neo.sids.table import SIDS_DIR, codebooks_path, load_tables, save_tables
from neo.vocab import SIDVocab

NEO_FILE = "neo.json"
STATES_DIR = "checkpoints"
_STATE_NAME = re.compile(r"^step-(\d+)$")


def save_stage_checkpoint(
    directory: str | os.PathLike,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    vocab: SIDVocab,
    sids_dir: str | os.PathLike,
    meta: Mapping[str, Any],
) -> Path:
    """Write the loadable checkpoint of a finished stage into `directory` (other files there are kept)."""
    directory = Path(directory)
    tmp = directory / f".export.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    vocab.save(tmp)
    tables = load_tables(sids_dir)
    save_tables(tmp / SIDS_DIR, tables)
    for entity_type in tables:  # the fitted codebooks, so new items can get codes from the checkpoint alone
        codebooks = codebooks_path(sids_dir, entity_type)
        if codebooks.exists():
            shutil.copy2(codebooks, codebooks_path(tmp / SIDS_DIR, entity_type))
    for entry in sorted(tmp.iterdir()):
        target = directory / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    tmp.rmdir()
    write_json(directory / NEO_FILE, dict(meta))
    return directory


def require_stage(directory: str | os.PathLike, stage: str, needed_by: str) -> Path:
    """`directory` if it holds a finished `stage` checkpoint, else an error saying what to run."""
    directory = Path(directory)
    marker = directory / NEO_FILE
    if not marker.exists():
        raise FileNotFoundError(
            f"{directory}: no finished {stage!r} checkpoint ({NEO_FILE} missing); stage "
            f"{needed_by!r} starts from it: run `neo run train stage={stage}` with the same "
            "data and output_dir first"
        )
    found = json.loads(marker.read_text()).get("stage")
    if found != stage:
        raise ValueError(f"{marker}: checkpoint of stage {found!r}, expected {stage!r}")
    return directory


def load_stage_checkpoint(
    directory: str | os.PathLike,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, SIDVocab]:
    """Model (float32), tokenizer and SID vocabulary of a saved stage."""
    model = AutoModelForCausalLM.from_pretrained(directory, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    return model, tokenizer, SIDVocab.load(directory)


def state_dir(stage_dir: str | os.PathLike, step: int) -> Path:
    return Path(stage_dir) / STATES_DIR / f"step-{step}"


def latest_state(stage_dir: str | os.PathLike) -> tuple[Path, int] | None:
    """The newest complete training state of a stage and its step (temp folders are ignored)."""
    root = Path(stage_dir) / STATES_DIR
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STATE_NAME.match(p.name)) and p.is_dir()]
    if not found:
        return None
    step, path = max(found)
    return path, step


def prune_states(stage_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest `keep` training states (and temp folders of killed saves)."""
    root = Path(stage_dir) / STATES_DIR
    if not root.is_dir():
        return
    states = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _STATE_NAME.match(p.name)))
    for _, path in states[: max(0, len(states) - keep)]:
        shutil.rmtree(path, ignore_errors=True)
    for leftover in root.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
