"""A hand-made mini catalog (shows and their episodes) with fixed SID tables: fast and independent of
the SID builder, so model and training tests fail only for their own reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neo.sids.table import SIDTable, save_tables

WORDS = ["jazz", "news", "science", "comedy", "history", "football", "cooking", "travel", "crime", "music"]


def write_mini_world(root: Path, shows: int = 8, episodes_per_show: int = 5, users: int = 24) -> Path:
    """Catalog dir with `shows` shows, their episodes and users who listen within one or two topics."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(
        "name: mini\nentity_types:\n  - {name: show, description: a podcast show}\n"
        "  - {name: episode, description: one episode of a show}\nsplit: leave_one_out\n"
    )
    items = []
    for s in range(shows):
        topic = WORDS[s % len(WORDS)]
        items.append(
            {
                "id": f"s{s}",
                "type": "show",
                "title": f"The {topic} hour {s}",
                "text": f"A weekly show about {topic}.",
                "popularity": float(shows - s),
            }
        )
        for e in range(episodes_per_show):
            items.append(
                {
                    "id": f"s{s}e{e}",
                    "type": "episode",
                    "title": f"{topic} talk part {e}",
                    "text": f"Episode {e} of the {topic} hour.",
                    "links": {"show": [f"s{s}"]},
                }
            )
    rng = np.random.default_rng(0)
    interactions = []
    for u in range(users):
        favourite = u % shows
        for t in range(8):
            show = favourite if rng.random() < 0.8 else int(rng.integers(shows))
            interactions.append(
                {
                    "user": f"u{u}",
                    "item": f"s{show}e{int(rng.integers(episodes_per_show))}",
                    "timestamp": float(t),
                    "context": {"device": "phone"},
                }
            )
    for name, records in (
        ("items", items),
        ("users", [{"id": f"u{u}"} for u in range(users)]),
        ("interactions", interactions),
    ):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def mini_tables(shows: int = 8, episodes_per_show: int = 5) -> dict[str, SIDTable]:
    """Unique 3-level codes: shows 4x4x4, episodes 4x8x4 (level 0 groups by show)."""
    show_ids = [f"s{s}" for s in range(shows)]
    show_codes = np.array([[s % 4, s // 4, 0] for s in range(shows)])
    episode_ids = [f"s{s}e{e}" for s in range(shows) for e in range(episodes_per_show)]
    episode_codes = np.array([[s % 4, e, s // 4] for s in range(shows) for e in range(episodes_per_show)])
    return {
        "show": SIDTable("show", show_ids, show_codes, (4, 4, 4)),
        "episode": SIDTable("episode", episode_ids, episode_codes, (4, 8, 4)),
    }


@pytest.fixture(scope="session")
def mini_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(catalog dir, sids dir) of the mini world."""
    root = tmp_path_factory.mktemp("mini-world")
    catalog_dir = write_mini_world(root / "data")
    sids_dir = root / "sids"
    save_tables(sids_dir, mini_tables())
    return catalog_dir, sids_dir
