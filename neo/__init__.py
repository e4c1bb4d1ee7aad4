"""neo: one catalog-grounded LLM for recommendation, search and user understanding."""

__version__ = "0.1.0"
