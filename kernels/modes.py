"""Per-row decoding modes shared by the decoder's state machine and the mask kernels."""

FREE = 0  # free text: text tokens and the open tokens of allowed types
SPAN = 1  # inside an item span: only the current node's allowed children
DONE = 2  # every level emitted: only the close token of the span's type
UNCONSTRAINED = 3  # rows the constraint leaves untouched
