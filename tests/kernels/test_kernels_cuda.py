"""The compiled Triton kernels on a real GPU: exactly the torch backend's masks, and neo's decoders on CUDA
give the CPU's items. Skipped without CUDA; never sets TRITON_INTERPRET (run this file on its own:
test_mask_kernels.py sets it when imported, and these tests then skip rather than test the interpreter).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os

import numpy as np
import pytest
import torch
from neo.kernels import DONE, FREE, SPAN, UNCONSTRAINED, apply_token_bitmask_
from transformers import LogitsProcessorList

from neo.decoding import SIDConstraintLogitsProcessor, beam_search_items, generate_mixed
from neo.decoding.state import DecodeState, constrain, row_type_masks
from neo.decoding.synthetic import random_sid_tables, tiny_llama
from neo.decoding.trie import ItemTrie
from neo.vocab import SIDVocab

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

DEVICE = torch.device("cuda")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
LAYOUTS = ["contiguous", "row_slice", "transposed"]
# (base vocabulary, codebooks per type, items per type): odd sizes and a 2-word level; wide multi-word
# levels with two types of different depth; and the benchmark's shape.
CATALOGS = {
    "small": (37, {"a": [5, 3], "b": [40, 2, 7]}, {"a": 12, "b": 60}),
    "wide": (1000, {"item": [256, 300, 64], "user": [97, 33]}, {"item": 5000, "user": 900}),
}
LARGE = (50_000, {"item": [256, 256, 256]}, {"item": 100_000})
LARGE_ROWS = 512


@pytest.fixture(autouse=True)
def _compiled_triton() -> None:
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("TRITON_INTERPRET=1 (test_mask_kernels.py sets it): run this file alone for the GPU")


@functools.cache
def catalog(name: str, device: torch.device | str) -> tuple[SIDVocab, dict, ItemTrie]:
    """A random catalog (built once per name and device; nothing here modifies a trie)."""
    base, codebooks, items = LARGE if name == "large" else CATALOGS[name]
    vocab = SIDVocab(base, codebooks)
    tables = random_sid_tables(vocab, items, seed=7)
    return vocab, tables, ItemTrie.build(vocab, tables, device)


def random_histories(
    vocab: SIDVocab, tables: dict, rows: int, rng: np.random.Generator
) -> tuple[torch.Tensor, list[list[str]]]:
    """Token histories ending in text, inside a span at every depth, complete, or just closed; and the
    types each row may open."""
    names = list(vocab.blocks)
    length = vocab.max_levels + 4
    histories, allowed = [], []
    for _ in range(rows):
        name = str(rng.choice(names))
        codes = tables[name].codes[rng.integers(len(tables[name]))].tolist()
        if rng.random() < 0.1:  # a path that is no item (or a wrong level): free text again
            codes[-1] = int(rng.integers(vocab.block(name).codebook_sizes[-1]))
        depth = int(rng.integers(-1, len(codes) + 2))  # -1: no span; levels: complete; levels+1: closed
        span = [] if depth < 0 else vocab.span_ids(name, codes)[: depth + 1]
        histories.append(rng.integers(0, vocab.base_size, length - len(span)).tolist() + span)
        allowed.append(sorted(set(rng.choice(names, size=int(rng.integers(0, len(names) + 1))).tolist())))
    return torch.tensor(histories), allowed


def decode_states(
    vocab: SIDVocab, tables: dict, trie: ItemTrie, rows: int, seed: int, tables_per_row: bool
) -> tuple[DecodeState, torch.Tensor | None, dict]:
    """A state of `rows` rows built with neo's public functions on `trie`'s device, the child-bitmap
    table(s) it reads (None: the trie's own), and the host-side inputs to rebuild it on another device."""
    rng = np.random.default_rng(seed)
    histories, allowed = random_histories(vocab, tables, rows, rng)
    inputs = {
        "histories": histories,
        "allowed": allowed,
        "items_left": torch.from_numpy(rng.integers(0, 3, rows)),
        "unconstrained": torch.from_numpy(rng.random(rows) < 0.1),
        "leaf_alive": torch.from_numpy(rng.random(trie.n_leaves) < 0.6) if tables_per_row else None,
        "table": torch.from_numpy(rng.integers(0, 2, rows)) if tables_per_row else None,
    }
    state, bits = rebuild(inputs, trie)
    return state, bits, inputs


def rebuild(inputs: dict, trie: ItemTrie) -> tuple[DecodeState, torch.Tensor | None]:
    device = trie.device
    bits = table = None
    if inputs["leaf_alive"] is not None:  # per-request tables: the trie's own and a restricted one
        bits = torch.cat([trie.alive_bits, trie.bits_for_alive(inputs["leaf_alive"])])
        table = inputs["table"].to(device)
    rows = len(inputs["allowed"])
    state = DecodeState.from_suffix(
        inputs["histories"].to(device),
        trie,
        row_type_masks(trie, inputs["allowed"], rows),
        inputs["items_left"].to(device),
        bits,
        table,
    ).unconstrain(inputs["unconstrained"].to(device))
    return state, bits


def layout(base: torch.Tensor, kind: str) -> torch.Tensor:
    """`base`'s values in another memory layout: contiguous, a row-strided slice, or column-strided."""
    rows, columns = base.shape
    if kind == "contiguous":
        return base.clone()
    if kind == "row_slice":
        holder = torch.zeros(rows, 3, columns + 11, dtype=base.dtype, device=base.device)
        holder[:, 1, 4 : 4 + columns] = base
        return holder[:, 1, 4 : 4 + columns]
    return base.t().contiguous().t()


def assert_states_equal(a: DecodeState, b: DecodeState) -> None:
    for field in dataclasses.fields(DecodeState):
        assert torch.equal(getattr(a, field.name).cpu(), getattr(b, field.name).cpu()), field.name


@pytest.mark.parametrize("tables_per_row", [False, True])
@pytest.mark.parametrize("name", list(CATALOGS))
def test_random_walks_triton_equals_torch_and_cpu(name: str, tables_per_row: bool) -> None:
    """Many decode states: random histories, then random constrained steps. At every step the Triton mask
    equals the torch mask on the GPU and on the CPU, in every dtype and layout; `constrain` and `advance`
    on the GPU equal the CPU's."""
    vocab, tables, trie = catalog(name, DEVICE)
    cpu_trie = ItemTrie.build(vocab, tables)
    rows, columns = 64, vocab.total_size + 5  # a few columns past the SID vocabulary (padded embeddings)
    modes_seen: set[int] = set()
    for seed in range(4):
        state, bits, inputs = decode_states(vocab, tables, trie, rows, seed, tables_per_row)
        cpu_state, cpu_bits = rebuild(inputs, cpu_trie)
        assert_states_equal(state, cpu_state)
        generator = torch.Generator(device=DEVICE).manual_seed(seed)
        for _ in range(vocab.max_levels + 3):
            modes_seen |= set(state.mode.tolist())
            base = torch.randn(rows, columns, device=DEVICE, generator=generator)
            for dtype in DTYPES:
                typed = base.to(dtype)
                reference = state.mask_(typed.clone(), trie, bits, backend="torch")
                on_cpu = cpu_state.mask_(typed.cpu(), cpu_trie, cpu_bits, backend="torch")
                assert torch.equal(reference.cpu(), on_cpu)
                for kind in LAYOUTS:
                    logits = layout(typed, kind)
                    state.mask_(logits, trie, bits, backend="triton")
                    assert torch.equal(logits, reference), (dtype, kind)
                # the decoding loop's own path: per-row caps and windows, on the GPU as on the CPU
                gpu_logits, cpu_logits = typed.clone(), typed.cpu()
                gpu_window = constrain(gpu_logits, state, trie, bits)
                cpu_window = constrain(cpu_logits, cpu_state, cpu_trie, cpu_bits)
                assert torch.equal(gpu_logits.cpu(), cpu_logits)
                assert torch.equal(gpu_window.window_logits.cpu(), cpu_window.window_logits)
                assert torch.equal(gpu_window.window_start.cpu(), cpu_window.window_start)
            # a random allowed token per row, open tokens favoured so that rows walk into spans
            allowed = torch.isfinite(state.mask_(base.clone(), trie, bits)).float()
            allowed[:, vocab.span_start :] *= 200
            tokens = torch.multinomial(allowed, 1, generator=generator).squeeze(1)
            state = state.advance(tokens, trie)
            cpu_state = cpu_state.advance(tokens.cpu(), cpu_trie)
            assert_states_equal(state, cpu_state)
    assert {FREE, SPAN, DONE, UNCONSTRAINED} <= modes_seen


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_case_triton_equals_torch(dtype: torch.dtype) -> None:
    """100k items, 50,816 columns (50k text tokens + 3 x 256 codes), 512 rows: the benchmark's shape."""
    vocab, tables, trie = catalog("large", DEVICE)
    state, bits, _ = decode_states(vocab, tables, trie, LARGE_ROWS, seed=11, tables_per_row=True)
    base = torch.randn(LARGE_ROWS, vocab.total_size, device=DEVICE).to(dtype)
    reference = state.mask_(base.clone(), trie, bits, backend="torch")
    for kind in ("contiguous", "transposed"):
        logits = layout(base, kind)
        state.mask_(logits, trie, bits, backend="triton")
        assert torch.equal(logits, reference), kind
    # the default dispatch on a CUDA tensor is the Triton kernel
    logits = base.clone()
    state.mask_(logits, trie, bits)
    assert torch.equal(logits, reference)
    # packed bitmask (xgrammar layout) applied by Triton == the fused mask
    packed = apply_token_bitmask_(base.clone(), state.bitmask(trie, vocab.total_size, bits), backend="triton")
    assert torch.equal(packed, reference)


@pytest.mark.parametrize("indices", [None, "some"])
@pytest.mark.parametrize("kind", ["contiguous", "transposed"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9, 1037), (LARGE_ROWS, 50_848)])
def test_triton_bitmask_apply_equals_torch(
    shape: tuple[int, int], dtype: torch.dtype, kind: str, indices: str | None
) -> None:
    rows, vocab_size = shape
    generator = torch.Generator(device=DEVICE).manual_seed(rows)
    bitmask = torch.randint(
        -(2**31), 2**31 - 1, (rows, -(-vocab_size // 32)), dtype=torch.int32, device=DEVICE, generator=generator
    )
    index = None
    if indices is not None:
        index = torch.randperm(rows, device=DEVICE, generator=generator)[: max(1, rows // 3)]
    base = torch.randn(rows, vocab_size, device=DEVICE, generator=generator).to(dtype)
    reference = apply_token_bitmask_(base.clone(), bitmask, index, backend="torch")
    logits = layout(base, kind)
    apply_token_bitmask_(logits, bitmask, index, backend="triton")
    assert torch.equal(logits, reference)
    on_cpu = apply_token_bitmask_(base.cpu(), bitmask.cpu(), None if index is None else index.cpu())
    assert torch.equal(reference.cpu(), on_cpu)


def peaked_tiny_llama(vocab: SIDVocab) -> torch.nn.Module:
    """A random tiny Llama with large logits, so that no near-tie lets float noise pick another item."""
    model = tiny_llama(vocab.total_size, seed=3)
    with torch.no_grad():
        model.lm_head.weight.mul_(40)
        model.lm_head.weight[vocab.base_size :] *= 1.5  # eager to open spans
    return model


def test_decoders_on_cuda_give_the_cpu_items() -> None:
    """neo's beam search, its mixed generation and HF generate with neo's processor (the Triton mask),
    float32 tiny Llama: the GPU names the CPU's items."""
    vocab = SIDVocab(300, {"item": [32, 40, 16], "user": [64, 8]})
    tables = random_sid_tables(vocab, {"item": 4000, "user": 300}, seed=5)
    cpu_trie, gpu_trie = ItemTrie.build(vocab, tables), ItemTrie.build(vocab, tables, DEVICE)
    cpu_model = peaked_tiny_llama(vocab)
    gpu_model = copy.deepcopy(cpu_model).to(DEVICE)
    prompts = torch.randint(0, vocab.base_size, (4, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(prompts)
    mask[1, :3] = 0  # left padding

    def beams(model, trie, device, entity_type):
        types = [entity_type] * len(prompts)  # one type per call: types of different depths in one batch
        return beam_search_items(model, prompts.to(device), mask.to(device), trie, types, k=10, beam_width=16)

    pairs = [
        pair
        for entity_type in ("item", "user")
        for pair in zip(
            beams(cpu_model, cpu_trie, "cpu", entity_type),
            beams(gpu_model, gpu_trie, DEVICE, entity_type),
            strict=True,
        )
    ]
    for cpu_hits, gpu_hits in pairs:
        assert len(cpu_hits) == len(gpu_hits) == 10
        cpu_scores, gpu_scores = [h.score for h in cpu_hits], [h.score for h in gpu_hits]
        np.testing.assert_allclose(gpu_scores, cpu_scores, rtol=1e-4, atol=1e-3)
        # the same items, order aside where two scores tie within float noise
        last = min(cpu_scores[-1], gpu_scores[-1]) + 1e-3
        assert {h.item_id for h in cpu_hits if h.score > last} == {h.item_id for h in gpu_hits if h.score > last}
        assert len({h.item_id for h in gpu_hits}) == 10

    # mixed generation, greedy: one prompt ends with an open token, so at least one item is named
    mixed_prompts = prompts.clone()
    mixed_prompts[2, -1] = vocab.open_id("item")

    def mixed(model, trie, device):
        return generate_mixed(
            model, mixed_prompts.to(device), mask.to(device), trie, ["item", "user"], max_new_tokens=24,
            max_items=3, eos_token_id=2,
        )

    cpu_out, gpu_out = mixed(cpu_model, cpu_trie, "cpu"), mixed(gpu_model, gpu_trie, DEVICE)
    assert [o.token_ids for o in gpu_out] == [o.token_ids for o in cpu_out]
    assert [o.items for o in gpu_out] == [o.items for o in cpu_out]
    assert any(o.items for o in gpu_out)

    # HF generate with neo's processor: the full-row mask (Triton on the GPU), greedy and beam search
    for num_beams in (1, 4):
        generated = []
        for model, trie, device in ((cpu_model, cpu_trie, "cpu"), (gpu_model, gpu_trie, DEVICE)):
            processor = SIDConstraintLogitsProcessor(trie, ["item", "user"], max_items=2, prompt_length=12)
            with torch.no_grad():
                out = model.generate(
                    input_ids=mixed_prompts.to(device),
                    attention_mask=mask.to(device),
                    max_new_tokens=16,
                    do_sample=False,
                    num_beams=num_beams,
                    pad_token_id=0,
                    eos_token_id=2,
                    logits_processor=LogitsProcessorList([processor]),
                )
            generated.append(out.cpu())
        assert torch.equal(generated[0], generated[1]), num_beams


def _big_logits(columns: int, dtype: torch.dtype) -> torch.Tensor:
    """[rows, columns] with rows * columns past 2**31 elements (beams x batch x a 50k+ vocabulary)."""
    needed = (2**31 // columns + 8) * columns * torch.finfo(dtype).bits // 8
    if torch.cuda.mem_get_info()[0] < 3 * needed:
        pytest.skip(f"needs {3 * needed / 2**30:.1f} GiB of free GPU memory")
    return torch.randn(2**31 // columns + 8, columns, device=DEVICE, dtype=dtype)


def _checked_rows(rows: int, columns: int) -> torch.Tensor:
    boundary = 2**31 // columns  # the row whose elements cross 2**31
    picked = [*range(0, 4), *range(boundary - 3, min(rows, boundary + 4)), *range(rows - 4, rows)]
    return torch.tensor(sorted(set(picked)), device=DEVICE)


# Last in the file: an int32 overflow in a kernel's offsets can leave the CUDA context unusable.
def test_sid_mask_past_2_31_elements() -> None:
    vocab, tables, trie = catalog("large", DEVICE)
    small, bits, _ = decode_states(vocab, tables, trie, 256, seed=5, tables_per_row=False)
    logits = _big_logits(vocab.total_size, torch.bfloat16)
    rows = logits.shape[0]
    state = small.reorder(torch.arange(rows, device=DEVICE) % 256)
    picked = _checked_rows(rows, vocab.total_size)
    expected = state.reorder(picked).mask_(logits[picked].clone(), trie, bits, backend="torch")
    state.mask_(logits, trie, bits, backend="triton")
    torch.cuda.synchronize()
    assert torch.equal(logits[picked], expected)


def test_bitmask_apply_past_2_31_elements() -> None:
    columns = 50_848
    logits = _big_logits(columns, torch.bfloat16)
    rows = logits.shape[0]
    generator = torch.Generator(device=DEVICE).manual_seed(0)
    words = torch.randint(-(2**31), 2**31 - 1, (64, -(-columns // 32)), dtype=torch.int32, device=DEVICE,
                          generator=generator)
    bitmask = words[torch.arange(rows, device=DEVICE) % 64]
    picked = _checked_rows(rows, columns)
    expected = apply_token_bitmask_(logits[picked].clone(), bitmask[picked], backend="torch")
    apply_token_bitmask_(logits, bitmask, backend="triton")
    torch.cuda.synchronize()
    assert torch.equal(logits[picked], expected)
