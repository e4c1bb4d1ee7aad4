"""HTTP serving of a neo checkpoint: FastAPI app, dynamic micro-batcher, metrics, JSON logs."""
