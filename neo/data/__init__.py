"""Catalog data model: entity types, items, users, interactions, queries and profiles on disk."""

from neo.data.catalog import Catalog, CatalogError, DatasetSpec, EntityType

__all__ = ["Catalog", "CatalogError", "DatasetSpec", "EntityType"]
