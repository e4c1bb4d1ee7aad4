"""Cold start for a nested type: new children (a show's new episode) recommended before anyone played them.

Every parent with room in the rank level gets one new child (`neo.sids.build.encode_new_children`), added
to a loaded model without retraining (`Neo.add_items`). Users whose last play is a parent's latest child
then ask for the next item of the child type: a recommender fitted on interactions (popularity,
co-occurrence, SASRec) cannot name an item nobody has played, while nested SIDs make the new child the
code "the next episode" already predicts. Control users (any other last play) show how often new children
reach lists where nothing asks for them.

    python -m neo.eval.new_items <checkpoint> [--type episode] [--users 150] [--prior-weight 0]
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path

from neo.api import Neo, RecommendRequest, find_catalog, read_checkpoint_meta
from neo.data.catalog import Catalog
from neo.decoding.prior import FusionSettings
from neo.sids.build import encode_new_children
from neo.sids.table import SIDTable

NEW_SUFFIX = "~new"


def latest_children(children: SIDTable, parents: SIDTable) -> dict[str, str]:
    """Parent id -> its child with the highest rank (the last level of a nested code)."""
    return {parent: members[-1] for parent, members in children.families(parents).items()}


def _recommend(model: Neo, histories: Sequence[list[str]], child_type: str, k: int) -> list[list[str]]:
    answers = model.recommend_batch([RecommendRequest(h, child_type, k) for h in histories])
    return [[item.item_id for item in answer] for answer in answers]


def new_children_probe(
    model: Neo, catalog: Catalog, child_type: str = "episode", users: int = 150, k: int = 10, seed: int = 0
) -> dict[str, float]:
    """Add one new child per parent with room to `model` (it keeps them), then score as the module says."""
    children = model.tables[child_type]
    parent_type = children.parent_type
    if parent_type is None:
        raise ValueError(f"type {child_type!r} is not nested (no parent type in its SID table's meta)")
    parents = model.tables[parent_type]
    latest = latest_children(children, parents)
    rank_size = children.codebook_sizes[-1]
    with_room = [p for p, item in latest.items() if children.code_of(item)[-1] + 1 < rank_size]
    new_of_latest = {latest[p]: p + NEW_SUFFIX for p in with_room}
    added = encode_new_children(children, parents, [p + NEW_SUFFIX for p in with_room], with_room)
    model.add_items(added.table, {p + NEW_SUFFIX: f"{model.records[p][1]} (new)" for p in with_room})

    histories = {  # whole logged histories (within the API's limit): what comes after the last play?
        user: [item for item, _, _ in events if item in model.records][-model.limits.max_history :]
        for user, events in catalog.sequences().items()
    }
    histories = {user: h for user, h in histories.items() if h}
    rng = random.Random(seed)
    probe = sorted(u for u, h in histories.items() if h[-1] in new_of_latest)
    control = sorted(u for u, h in histories.items() if h[-1] not in new_of_latest)
    probe = rng.sample(probe, min(users, len(probe)))
    control = rng.sample(control, min(users, len(control)))
    if not probe:
        raise ValueError(
            f"no user's last play is the latest {child_type!r} of a parent with room for a new one"
        )

    answers = _recommend(model, [histories[u] for u in probe], child_type, k)
    wanted = [new_of_latest[histories[u][-1]] for u in probe]
    control_answers = _recommend(model, [histories[u] for u in control], child_type, k)
    parent_of = {
        child: parent
        for parent, members in model.tables[child_type].families(parents).items()
        for child in members
    }
    unrelated = 0
    for user, answer in zip(control, control_answers, strict=True):
        heard = {parent_of[i] for i in histories[user] if model.records[i][0] == child_type}
        unrelated += any(i.endswith(NEW_SUFFIX) and parent_of[i] not in heard for i in answer)
    return {
        "parents_with_new_child": len(with_room),
        "probe_users": len(probe),
        "new_child/top1": sum(a[:1] == [w] for a, w in zip(answers, wanted, strict=True)) / len(probe),
        f"new_child/hit@{k}": sum(w in a for a, w in zip(answers, wanted, strict=True)) / len(probe),
        "control_users": len(control),
        f"control/new_children_per_top{k}": sum(
            sum(i.endswith(NEW_SUFFIX) for i in a) for a in control_answers
        )
        / max(1, len(control)),
        "control/share_with_new_child_of_unheard_parent": unrelated / max(1, len(control)),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--catalog", default=None, help="dataset directory (default: the checkpoint's)")
    parser.add_argument("--type", default="episode", help="a nested entity type")
    parser.add_argument("--users", type=int, default=150, help="probe and control users, each")
    parser.add_argument("--beam-width", type=int, default=20)
    parser.add_argument("--prior-weight", type=float, default=None,
                        help="weight of the transition prior (0: the model alone; default: the checkpoint's)")
    args = parser.parse_args(argv)
    directory = Path(args.checkpoint)
    catalog_dir = (
        Path(args.catalog) if args.catalog else find_catalog(directory, read_checkpoint_meta(directory))
    )
    fusion = None if args.prior_weight is None else FusionSettings(weight=args.prior_weight)
    model = Neo.from_pretrained(directory, catalog=catalog_dir, beam_width=args.beam_width, fusion=fusion)
    print(json.dumps(new_children_probe(model, Catalog.load(catalog_dir), args.type, args.users), indent=2))


if __name__ == "__main__":
    main()
