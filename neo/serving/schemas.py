"""Request and response bodies of the HTTP API, built from the configured `Limits`.

The limits are part of the published OpenAPI schema (maxItems, maxLength, maximum), so clients and
schema-driven fuzzers see them, and FastAPI answers 422 naming the field that broke one.
Unknown fields are refused too: a typo like `target_typ` must not silently fall back to a default.
"""

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from neo.api import Limits

TYPE_NAME_CHARS = 64
MAX_EMBEDDING_WIDTH = 8192
TITLE_CHARS = 1000
CONTEXT_VALUE_CHARS = 128
MAX_CONTEXT_KEYS = 16


class ItemOut(BaseModel):
    item_id: str
    entity_type: str
    title: str
    sid: str = Field(description="the item's Semantic ID as its token span")
    score: float | None = Field(None, description=(
        "beam log-probability (ranked results only); recommendations add the weighted log transition prior, "
        "searches the weighted log BM25 prior"
    ))


class ItemsResponse(BaseModel):
    items: list[ItemOut]


class SegmentOut(BaseModel):
    kind: Literal["text", "item"]
    text: str
    item: ItemOut | None = None


class TextResponse(BaseModel):
    text: str = Field(description="the output with item references rendered as titles")
    segments: list[SegmentOut]
    items: list[ItemOut] = Field(description="the items the output mentions, in order")


class EntityTypeOut(BaseModel):
    name: str
    items: int


class CatalogResponse(BaseModel):
    entity_types: list[EntityTypeOut]
    total_items: int


class StatusResponse(BaseModel):
    status: str
    detail: str | None = None


@dataclass(frozen=True)
class RequestSchemas:
    """The request body classes for one set of limits."""

    recommend: type[BaseModel]
    search: type[BaseModel]
    describe_user: type[BaseModel]
    generate: type[BaseModel]
    new_items: type[BaseModel]


def build_request_schemas(limits: Limits) -> RequestSchemas:
    """Request bodies whose constraints come from `limits` (the server's configuration)."""
    item_id = Annotated[str, StringConstraints(min_length=1, max_length=limits.max_id_chars)]
    type_name = Annotated[str, StringConstraints(min_length=1, max_length=TYPE_NAME_CHARS)]
    strict = ConfigDict(extra="forbid")
    context_value = Annotated[str, StringConstraints(max_length=CONTEXT_VALUE_CHARS)]

    class HistoryEntryBody(BaseModel):
        """An interaction with its time and context; a bare item id string means neither is known."""

        model_config = strict
        item: item_id
        timestamp: float | None = Field(None, allow_inf_nan=False, description="seconds since the epoch")
        context: dict[type_name, context_value] | None = Field(
            None, max_length=MAX_CONTEXT_KEYS, description='e.g. {"surface": "app"}'
        )

    history_entry = item_id | HistoryEntryBody

    class FiltersBody(BaseModel):
        """Per-request catalog restrictions applied inside the decoder (never post-filtered)."""

        model_config = strict
        allow: list[item_id] | None = Field(
            None, max_length=limits.max_exclude, description="only these item ids may be returned"
        )
        deny: list[item_id] = Field(
            default_factory=list,
            max_length=limits.max_exclude,
            description="these item ids may never be returned",
        )

    class RecommendBody(BaseModel):
        model_config = strict
        history: list[history_entry] = Field(
            min_length=1,
            max_length=limits.max_history,
            description="the user's items (ids or entries), oldest first",
        )
        target_type: type_name = Field(description="entity type to recommend (see /v1/catalog)")
        k: int = Field(10, ge=1, le=limits.max_k)
        discovery: Literal["familiar", "unfamiliar"] | None = Field(
            None,
            description="steer towards items like the history (familiar) or new to the user (unfamiliar)",
        )
        exclude: list[item_id] = Field(
            default_factory=list,
            max_length=limits.max_exclude,
            description="item ids that must not be recommended",
        )
        filters: FiltersBody | None = None
        prior_weight: float | None = Field(
            None,
            ge=0,
            description="weight of the transition prior for this request (0: the model alone, best for items "
            "added after training); null: the server's",
        )

    class SearchBody(BaseModel):
        model_config = strict
        query: str = Field(min_length=1, max_length=limits.max_query_chars)
        target_type: type_name
        k: int = Field(10, ge=1, le=limits.max_k)
        prior_weight: float | None = Field(
            None,
            ge=0,
            description="weight of the lexical (BM25 over item text) prior for this search (0: the model "
            "alone); null: the server's",
        )

    class DescribeUserBody(BaseModel):
        model_config = strict
        history: list[history_entry] = Field(
            min_length=1,
            max_length=limits.max_history,
            description="the user's items (ids or entries), oldest first",
        )
        max_new_tokens: int | None = Field(None, ge=1, le=limits.max_new_tokens)

    class GenerateBody(BaseModel):
        model_config = strict
        prompt: str = Field(min_length=1, max_length=limits.max_prompt_chars)
        max_new_tokens: int | None = Field(None, ge=1, le=limits.max_new_tokens)
        allowed_types: list[type_name] | None = Field(
            None, max_length=32, description="entity types the output may reference (default: all)"
        )

    class NewItemBody(BaseModel):
        """An item to add; see `neo.api.NewItem` for which fields a type needs."""

        model_config = strict
        id: item_id
        title: Annotated[str, StringConstraints(min_length=1, max_length=TITLE_CHARS)]
        parent: item_id | None = Field(None, description="nested types: the parent item (e.g. the show)")
        order_key: float | str | None = Field(
            None, description="nested types: order among the parent's new items (e.g. episode number)"
        )
        embedding: list[float] | None = Field(
            None,
            max_length=MAX_EMBEDDING_WIDTH,
            description="quantised types: the item's embedding, made as the type's SIDs were",
        )

    class NewItemsBody(BaseModel):
        model_config = strict
        entity_type: type_name
        items: list[NewItemBody] = Field(min_length=1, max_length=limits.max_new_items)

    return RequestSchemas(RecommendBody, SearchBody, DescribeUserBody, GenerateBody, NewItemsBody)
