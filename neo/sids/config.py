"""Typed SID configuration: the `sid` Hydra group turned into checked dataclasses, one per entity type.

A Hydra `sid` config holds defaults for every type plus an `overrides` mapping (type -> partial config),
because NEO builds one quantiser per entity type and types differ (artists got 1024 codes, not 256).
Checks run in `__post_init__` so a typo fails before minutes of embedding, not after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

EMBEDDERS = ("minilm", "hf", "file", "catalog", "collaborative", "tfidf", "hybrid")
CONTENT_EMBEDDERS = ("minilm", "hf", "tfidf")
QUANTIZERS = ("rkmeans", "rqvae")
COLLISION_POLICIES = ("disambiguate", "popularity")
KMEANS_INITS = ("kmeans++", "random")


@dataclass(frozen=True)
class EmbedderConfig:
    """How item vectors are made. Fields a given embedder does not use are ignored (and not hashed)."""

    name: str = "minilm"
    model: str | None = None
    """`hf`: a sentence-transformers or Hugging Face encoder directory."""
    batch_size: int = 64
    max_length: int = 256
    path: str | None = None
    """`file`: `.npy` (with `ids`) or `.parquet` (columns `id`, `embedding` or `vector`); `{type}` is replaced.
    (`catalog` reads the dataset's own `embeddings.parquet|jsonl` instead.)"""
    ids: str | None = None
    """`file` with `.npy`: a `.json` list or `.txt` (one per line) of item ids, row-aligned."""
    dim: int = 128
    """`tfidf`/`collaborative`: SVD dimensions."""
    max_features: int = 50_000
    window: int = 5
    """`collaborative`: items within this many steps of each other in a history co-occur."""
    seed: int = 0
    content: str = "tfidf"
    """`hybrid`: the text embedder joined to the collaborative vectors (tfidf | minilm | hf)."""
    content_weight: float = 0.3
    """`hybrid`: share of the squared norm given to the text part; cold items are placed by text alone."""
    group_by: str | None = None
    """Any embedder: a linked entity type (an episode's `show`, a product's `brand`). Items are pulled
    toward the mean vector of the items sharing that link, so siblings share SID prefixes and a model
    names "another episode of this show" by copying a prefix instead of memorising item pairs."""
    group_weight: float = 0.7
    """`group_by`: share of the squared norm given to the group's mean vector."""

    def __post_init__(self) -> None:
        if self.name not in EMBEDDERS:
            raise ValueError(f"sid embedder.name must be one of {EMBEDDERS}, got {self.name!r}")
        if self.name == "hf" and not self.model:
            raise ValueError("sid embedder 'hf' needs embedder.model (an encoder directory)")
        if self.name == "file" and not self.path:
            raise ValueError("sid embedder 'file' needs embedder.path (.npy or .parquet)")
        if self.group_by is not None and not 0 < self.group_weight < 1:
            raise ValueError(f"sid embedder.group_weight must lie in (0, 1), got {self.group_weight}")
        if self.dim <= 0 or self.batch_size <= 0 or self.window <= 0:
            raise ValueError("sid embedder dim, batch_size and window must be positive")
        if self.name == "hybrid":
            if self.content not in CONTENT_EMBEDDERS:
                raise ValueError(f"sid embedder.content must be one of {CONTENT_EMBEDDERS}, got {self.content!r}")
            if not 0 < self.content_weight < 1:
                raise ValueError(f"sid embedder.content_weight must lie in (0, 1), got {self.content_weight}")
            if self.content == "hf" and not self.model:
                raise ValueError("sid embedder 'hybrid' with content 'hf' needs embedder.model")

    def cache_key_fields(self) -> dict[str, Any]:
        """The fields that change the vectors of this embedder (the cache key); others are ignored."""
        used = {
            "minilm": ("max_length",),
            "hf": ("model", "max_length"),
            "file": ("path", "ids"),
            "catalog": (),
            "tfidf": ("dim", "max_features", "seed"),
            "collaborative": ("dim", "window", "seed"),
            "hybrid": ("dim", "window", "seed", "content", "content_weight", "max_features", "model", "max_length"),
        }[self.name]
        return {"name": self.name, **{key: getattr(self, key) for key in used}}

    def without_grouping(self) -> EmbedderConfig:
        """The same embedder before the group pull (its vectors are cached under this config)."""
        return replace(self, group_by=None)


@dataclass(frozen=True)
class QuantizerConfig:
    """Residual quantiser shape and fitting; `codebook_size` is one size for all levels or one per level."""

    method: str = "rkmeans"
    levels: int = 3
    codebook_size: int | tuple[int, ...] = 256
    niter: int = 20
    init: str = "kmeans++"
    max_points_per_centroid: int = 256
    """k-means trains on at most this many points per centroid (a seeded sample), as faiss does."""
    seed: int = 0
    # RQ-VAE only
    latent_dim: int = 64
    hidden_dim: int = 256
    epochs: int = 50
    batch_size: int = 1024
    lr: float = 1e-3
    beta: float = 0.25

    def __post_init__(self) -> None:
        if self.method not in QUANTIZERS:
            raise ValueError(f"sid quantizer.method must be one of {QUANTIZERS}, got {self.method!r}")
        if self.init not in KMEANS_INITS:
            raise ValueError(f"sid quantizer.init must be one of {KMEANS_INITS}, got {self.init!r}")
        if self.levels < 1:
            raise ValueError(f"sid quantizer.levels must be >= 1, got {self.levels}")
        sizes = self.sizes
        if len(sizes) != self.levels or min(sizes) < 1:
            raise ValueError(
                f"sid quantizer.codebook_size must be a positive int or {self.levels} of them, "
                f"got {self.codebook_size!r}"
            )

    @property
    def sizes(self) -> tuple[int, ...]:
        if isinstance(self.codebook_size, int):
            return (self.codebook_size,) * self.levels
        return tuple(int(s) for s in self.codebook_size)


@dataclass(frozen=True)
class ParentConfig:
    """Nested SIDs (`neo.sids.nest`): the parent's code plus the item's rank among its siblings."""

    type: str = ""
    """The linked entity type that is the parent (an episode's `show`); it gets its own table first."""
    order_by: str | None = None
    """A numeric or string item attribute that orders siblings (`episode_number`); catalog order if unset."""

    def __post_init__(self) -> None:
        if not self.type:
            raise ValueError("sid parent.type must name a linked entity type (e.g. show)")


@dataclass(frozen=True)
class TypeSIDConfig:
    """Everything that decides one entity type's SID table."""

    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    collisions: str = "disambiguate"
    byo: str | None = None
    """A bring-your-own SID file (`{type}` is replaced); when it exists the type's table is imported."""
    parent: ParentConfig | None = None
    """Nested SIDs: codes come from the parent type's table and a sibling rank, not from the quantiser."""

    def __post_init__(self) -> None:
        if self.collisions not in COLLISION_POLICIES:
            raise ValueError(f"sid collisions must be one of {COLLISION_POLICIES}, got {self.collisions!r}")
        if self.parent is not None and self.byo:
            raise ValueError("sid config: a type takes either `parent` (nested SIDs) or `byo`, not both")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, raw: Mapping[str, Any] | None, where: str) -> Any:
    raw = dict(raw or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    if isinstance(raw.get("codebook_size"), list | tuple):
        raw["codebook_size"] = tuple(raw["codebook_size"])
    return cls(**raw)


def _plain(cfg: Any) -> dict[str, Any]:
    """A DictConfig or mapping as a plain dict (OmegaConf is optional for callers outside Hydra)."""
    if cfg is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf ships with hydra, a core dependency
        pass
    return {key: (_plain(value) if isinstance(value, Mapping) else value) for key, value in dict(cfg).items()}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, Mapping) and isinstance(out.get(key), dict)
            else value
        )
    return out


SECTION_KEYS = ("embedder", "quantizer", "collisions", "byo", "parent")


def type_config(sid_cfg: Any, entity_type: str) -> TypeSIDConfig:
    """The config of one type: the group's defaults with `overrides.<type>` merged on top."""
    raw = _plain(sid_cfg)
    overrides = raw.get("overrides") or {}
    merged = _merge({key: raw[key] for key in SECTION_KEYS if key in raw}, overrides.get(entity_type) or {})
    where = f"sid config for type {entity_type!r}"
    extra = sorted(set(merged) - set(SECTION_KEYS))
    if extra:
        raise ValueError(f"{where}: unknown key(s) {extra}; expected some of {list(SECTION_KEYS)}")
    byo = merged.get("byo")
    parent = merged.get("parent")
    if parent is not None and not isinstance(parent, Mapping):
        raise ValueError(f"{where}: parent must be a mapping like {{type: show, order_by: episode_number}}")
    return TypeSIDConfig(
        embedder=_build(EmbedderConfig, merged.get("embedder"), f"{where}, embedder"),
        quantizer=_build(QuantizerConfig, merged.get("quantizer"), f"{where}, quantizer"),
        collisions=merged.get("collisions", "disambiguate"),
        byo=byo.replace("{type}", entity_type) if byo else None,
        parent=_build(ParentConfig, parent, f"{where}, parent") if parent else None,
    )


def selected_types(sid_cfg: Any, catalog_types: list[str]) -> list[str]:
    """Types that get tables: `sid.types` if set (checked against the catalog), else all catalog types."""
    wanted = _plain(sid_cfg).get("types")
    if not wanted:
        return list(catalog_types)
    unknown = [t for t in wanted if t not in catalog_types]
    if unknown:
        raise ValueError(f"sid.types names {unknown}, not entity types of this catalog {catalog_types}")
    return list(wanted)
