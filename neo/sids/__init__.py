"""Semantic IDs per entity type: embed items, quantise residually, resolve collisions, save tables.

Only the table is imported here, so `neo.sids.table` users (vocabulary, decoding, serving) do not pay for
faiss and the embedders; building lives in `neo.sids.build`.
"""

from neo.sids.table import SIDTable, load_tables, save_tables

__all__ = ["SIDTable", "load_tables", "save_tables"]
