"""`neo run bench_decoding`: per-step constraint cost of neo vs HF's PrefixConstrainedLogitsProcessor, and
end-to-end top-10 beam search with and without the constraint. Writes `<output_dir>/bench_decoding.json`.

`device=cuda` runs the same rows on the GPU (trie, state, logits and model there, a sync after every
timed call) and adds what only a GPU has: the step replayed as a CUDA graph, and the Triton full-row
mask next to its torch reference, in fp32 and bf16."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm
from transformers import LogitsProcessorList, PrefixConstrainedLogitsProcessor

from neo.decoding.beam import beam_search_items
from neo.decoding.processor import SIDConstraintLogitsProcessor
from neo.decoding.state import DecodeState, constrain, pick_tokens, row_type_masks
from neo.decoding.synthetic import random_sid_tables, tiny_llama
from neo.decoding.trie import ItemTrie
from neo.devices import resolve_device, tune_host_allocator
from neo.io import write_json
from neo.vocab import SIDVocab

QUICK = {
    "base_vocab": 2000,
    "codebooks": [16, 16, 8],
    "batches": [8],
    "items": [500],
    "repeats": 3,
    "beam": {"items": 500, "k": 5, "beam_width": 8, "prompts": 2, "prompt_length": 8},
}


def median_ms(
    function: Callable[[], object], repeats: int, min_seconds: float = 0.0, device: torch.device | None = None
) -> float:
    """Median wall time of `function` over at least `repeats` calls, and at least `min_seconds` of calls
    (sub-millisecond steps get hundreds of samples, so a burst of load on a shared machine moves the
    median less). On a GPU every call is followed by a sync, so the time is the kernels', not the launch's."""
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else lambda: None
    function()  # warm-up
    sync()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < 100 * repeats):
        begin = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - begin)
    return 1000 * statistics.median(times)


def cuda_graph_ms(function: Callable[[], object], repeats: int, device: torch.device) -> float | str:
    """`function` captured once in a CUDA graph and replayed: the step without its launch overhead
    (neo's state machine never syncs with the host, so it captures). A failed capture is reported."""
    try:
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                function()
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            function()
        return round(median_ms(graph.replay, repeats, 0.25, device), 4)
    except RuntimeError as exc:
        return f"capture failed: {str(exc)[:200]}"


def dict_trie(vocab: SIDVocab, codes: np.ndarray) -> dict[tuple[int, ...], list[int]]:
    """The usual Python trie (MiniOneRec / LC-Rec style): token prefix from the open token -> allowed next ids."""
    block = vocab.block("item")
    tokens = np.asarray(block.level_starts) + codes
    trie: dict[tuple[int, ...], set[int]] = {}
    for row in tqdm(tokens.tolist(), desc="python dict trie", leave=False):
        prefix = (block.open_id,)
        for token in row:
            trie.setdefault(prefix, set()).add(token)
            prefix = (*prefix, token)
        trie[prefix] = {block.close_id}
    return {prefix: sorted(allowed) for prefix, allowed in trie.items()}


def hf_prefix_fn(vocab: SIDVocab, trie: dict[tuple[int, ...], list[int]]) -> Callable:
    open_id, levels = vocab.open_id("item"), vocab.block("item").levels
    free_text = [*range(vocab.base_size), open_id]

    def allowed(batch_id: int, sentence: torch.Tensor) -> list[int]:
        tail = sentence[-(levels + 1) :].tolist()
        for depth in range(len(tail) - 1, -1, -1):
            if tail[depth] == open_id:
                return trie.get(tuple(tail[depth:]), free_text)
        return free_text

    return allowed


def step_rows(
    vocab: SIDVocab, codes: np.ndarray, batch: int, mode: str, rng: np.random.Generator
) -> torch.Tensor:
    """Histories of `batch` rows: all inside spans (`span`) or half of them in free text (`mixed`)."""
    levels = vocab.block("item").levels
    rows = []
    for row in range(batch):
        history = rng.integers(0, vocab.base_size, levels + 2).tolist()
        if mode == "span" or row % 2:
            item = codes[rng.integers(len(codes))].tolist()
            depth = int(rng.integers(0, levels))
            span = vocab.span_ids("item", item)[: depth + 1]
            history = history[: levels + 2 - len(span)] + span
        rows.append(history)
    return torch.tensor(rows)


def bench_steps(
    cfg: DictConfig, vocab: SIDVocab, items: int, rng: np.random.Generator, device: torch.device
) -> list[dict]:
    tables = random_sid_tables(vocab, {"item": items}, seed=int(rng.integers(1 << 30)))
    begin = time.perf_counter()
    trie = ItemTrie.build(vocab, tables, device)
    trie.step  # noqa: B018 - the step lookup tables are part of building (otherwise built on the first step)
    build_s = time.perf_counter() - begin
    prefix_fn = hf_prefix_fn(vocab, dict_trie(vocab, tables["item"].codes))
    on_gpu = device.type == "cuda"
    min_seconds = 0.25 * (not cfg.quick)
    results = []
    for batch in cfg.batches:
        for mode in ("span", "mixed"):
            history = step_rows(vocab, tables["item"].codes, batch, mode, rng).to(device)
            logits = torch.randn(batch, vocab.total_size, device=device)
            state = DecodeState.from_suffix(history, trie, row_type_masks(trie, ["item"], batch))
            tokens = pick_tokens(logits, constrain(logits.clone(), state, trie), state, trie)

            def neo_step(
                state: DecodeState = state, tokens: torch.Tensor = tokens, logits: torch.Tensor = logits
            ) -> None:
                constrain(logits, state, trie)  # idempotent on an already constrained buffer
                state.advance(tokens, trie)

            def full_mask(
                logits: torch.Tensor = logits, state: DecodeState = state, backend: str | None = None
            ) -> None:
                state.mask_(logits, trie, backend=backend)

            hf = PrefixConstrainedLogitsProcessor(prefix_fn, num_beams=1)
            neo_ms = median_ms(neo_step, cfg.repeats, min_seconds, device)
            hf_ms = median_ms(
                lambda hf=hf, history=history, logits=logits: hf(history, logits), max(3, cfg.repeats // 4), 0, device
            )
            full_mask_ms = median_ms(full_mask, cfg.repeats, min_seconds, device)
            row = {
                "batch": batch,
                "items": items,
                "vocab": vocab.total_size,
                "mode": mode,
                "neo_ms": round(neo_ms, 4),
                "hf_ms": round(hf_ms, 4),
                "speedup": round(hf_ms / neo_ms, 1),
                "neo_full_row_mask_ms": round(full_mask_ms, 4),
                "trie_build_s": round(build_s, 3),
                "trie_mb": round(trie.nbytes() / 2**20, 2),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
            if on_gpu:
                bf16 = logits.to(torch.bfloat16)
                row |= {
                    "neo_graph_ms": cuda_graph_ms(neo_step, cfg.repeats, device),
                    "full_row_mask_torch_ms": round(
                        median_ms(lambda: full_mask(backend="torch"), cfg.repeats, min_seconds, device), 4
                    ),
                    "full_row_mask_bf16_ms": round(
                        median_ms(lambda bf16=bf16: full_mask(bf16), cfg.repeats, min_seconds, device), 4
                    ),
                }
            results.append(row)
            print(
                f"batch {batch:4d} items {items:8d} {mode:5s}: neo {neo_ms:8.3f} ms  hf {hf_ms:9.3f} ms  "
                f"x{hf_ms / neo_ms:7.1f}  (fused full-row mask {full_mask_ms:.3f} ms, build {build_s:.2f} s"
                + (f", CUDA graph {row['neo_graph_ms']} ms" if on_gpu else f", load {row['load_avg_1min']:.2f}")
                + ")"
            )
    return results


def bench_beam(cfg: DictConfig, vocab: SIDVocab, device: torch.device) -> list[dict]:
    """Top-k beam search on a tiny random Llama: neo's loop, and HF generate with / without the processor."""
    beam = cfg.beam
    tables = random_sid_tables(vocab, {"item": beam["items"]}, seed=cfg.seed)
    trie = ItemTrie.build(vocab, tables, device)
    model = tiny_llama(vocab.total_size, seed=cfg.seed).to(device)
    prompts = torch.randint(
        0,
        vocab.base_size,
        (beam.prompts, beam.prompt_length),
        generator=torch.Generator().manual_seed(cfg.seed),
    ).to(device)
    prompts[:, -1] = vocab.open_id("item")
    levels = vocab.block("item").levels
    hf_kwargs = {
        "max_new_tokens": levels,
        "num_beams": beam.beam_width,
        "num_return_sequences": beam.k,
        "do_sample": False,
        "pad_token_id": 0,
        "eos_token_id": None,
        "early_stopping": False,
    }
    processor = LogitsProcessorList([SIDConstraintLogitsProcessor(trie, ["item"])])
    repeats = max(3, cfg.repeats // 4)
    with torch.no_grad():
        constrained = median_ms(
            lambda: model.generate(prompts, logits_processor=processor, **hf_kwargs), repeats, 0, device
        )
        unconstrained = median_ms(lambda: model.generate(prompts, **hf_kwargs), repeats, 0, device)
        neo_ms = median_ms(
            lambda: beam_search_items(
                model,
                prompts[:, :-1],
                None,
                trie,
                ["item"] * beam.prompts,
                k=beam.k,
                beam_width=beam.beam_width,
            ),
            repeats,
            0,
            device,
        )
    print(
        f"beam top-{beam.k} x{beam.prompts} prompts: HF+neo processor {constrained:.1f} ms, HF unconstrained "
        f"{unconstrained:.1f} ms (x{constrained / unconstrained:.2f}); neo beam_search_items {neo_ms:.1f} ms "
        f"(x{neo_ms / unconstrained:.2f})"
    )
    return [
        {
            "mode": "beam",
            "batch": beam.prompts,
            "items": beam["items"],
            "vocab": vocab.total_size,
            "k": beam.k,
            "beam_width": beam.beam_width,
            "constrained_ms": round(constrained, 2),
            "unconstrained_ms": round(unconstrained, 2),
            "ratio": round(constrained / unconstrained, 3),
            "neo_beam_ms": round(neo_ms, 2),
            "neo_ratio": round(neo_ms / unconstrained, 3),
        }
    ]


# An absolute path: run as `neo.recipes.bench_decoding`, Hydra would read "../conf" as the module `neo.conf`.
@hydra.main(
    config_path="pkg://neo.conf",
    config_name="bench_decoding",
    version_base="1.3",
)
def main(cfg: DictConfig) -> None:
    if cfg.quick:
        cfg.merge_with(QUICK)
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    vocab = SIDVocab(cfg.base_vocab, {"item": list(cfg.codebooks)})
    rows = []
    for items in tqdm(list(cfg["items"]), desc="catalog sizes"):
        rows += bench_steps(cfg, vocab, items, rng, device)
    rows += bench_beam(cfg, vocab, device)
    out = Path(cfg.output_dir) / "bench_decoding.json"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    write_json(out, {"threads": torch.get_num_threads(), "device": name, "torch": torch.__version__, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    tune_host_allocator()  # run as a file, the neo.recipes package (which tunes it) is not imported
    main()
