"""A random-weight tiny checkpoint over the demo world: the decoder guarantees valid items whatever the weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from neo.serving.tiny import write_random_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("tiny-checkpoint"), demo_dir, seed=0)
