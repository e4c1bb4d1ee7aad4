"""Model adaptation: base-model presets, the dataset tokenizer, SID-row resize/init and split rows."""

from neo.model.adapt import adapt_model
from neo.model.presets import load_base_model
from neo.model.sid_rows import merge_sid_rows, split_sid_rows

__all__ = ["adapt_model", "load_base_model", "merge_sid_rows", "split_sid_rows"]
