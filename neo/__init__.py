"""neo: one catalog-grounded LLM for recommendation, search and user understanding."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """Export `neo.Neo` lazily: `import neo` stays light (no torch, no transformers) until it is used."""
    if name == "Neo":
        from neo.api import Neo

        return Neo
    raise AttributeError(f"module 'neo' has no attribute {name!r}")
