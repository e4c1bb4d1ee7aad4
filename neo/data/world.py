"""The demo world: a synthetic audio-streaming catalog with learnable structure, generated in seconds.

Entity types: `artist` (hosts and authors), `show` (a podcast, hosted by an artist), `episode` (of a
show, numbered) and `audiobook` (by an artist). Every artist, show and audiobook belongs to one of 16
latent topics (`world_vocab.TOPICS`) and is written with that topic's words, so text embeddings group
items by topic. Users listen to episodes and audiobooks, and their sequences have the structure that
real listening has and a recommender must learn:

- long-term interests: each user likes 1-3 topics, which pick the topic of most sessions;
- drifting short-term intent: a session sometimes explores another topic, and a session keeps its topic;
- sequential structure: after an episode the next episode of the same show follows often (binge), and
  every item has one strongly related item that follows it often ("because you listened to");
- context: a surface that says how the item was reached (autoplay, recommended, search, home, library),
  the user's usual device and listening hour.

Search queries (text -> relevant items of one type, grouped by topic and subject, split train/test by
group) and ground-truth user profiles (text + interest topics) come with it. Everything is drawn with
numpy from one seeded generator, vectorised over items and users, so a 1M-item world takes seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from neo.data.catalog import DatasetSpec, EntityType
from neo.data.world_vocab import (
    BOOK_PATTERNS,
    DEVICES,
    EPISODE_FORMATS,
    FIRST_NAMES,
    LAST_NAMES,
    SURFACES,
    TOPICS,
)
from neo.data.writer import storage_json, write_spec, write_table

N_TOPICS = len(TOPICS)
N_SUBJECTS = len(TOPICS[0].subjects)
DAY = 86_400.0
EPOCH = 1_700_000_000.0  # Nov 2023: timestamps look like real Unix times
MAX_SEQUENCE = 50
# Behaviour knobs: how strongly the sequential structure shows. A binge continues a show; a related hop
# follows the item's fixed "related" item; anything else is a popularity draw from the session's topic.
P_NEW_SESSION = 0.3
P_EXPLORE_TOPIC = 0.15
P_BINGE_IN_SESSION = 0.45
P_BINGE_NEW_SESSION = 0.3
P_RELATED = 0.2
P_SEARCH = 0.25
P_USUAL_DEVICE = 0.85
MAX_RELEVANT = 50


@dataclass(frozen=True)
class WorldSize:
    items: int
    users: int
    mean_length: float


SCALES = {
    "tiny": WorldSize(items=300, users=150, mean_length=10),
    "small": WorldSize(items=4_000, users=3_000, mean_length=10),
    "medium": WorldSize(items=40_000, users=30_000, mean_length=10),
}


def world_size(scale: str | int) -> WorldSize:
    """A named scale, or an item count (users = items / 4, 8 interactions each on average)."""
    if isinstance(scale, str) and scale in SCALES:
        return SCALES[scale]
    if isinstance(scale, int) or (isinstance(scale, str) and scale.isdigit()):
        items = int(scale)
        if items < 100:
            raise ValueError(f"scale {scale!r}: a world needs at least 100 items")
        return WorldSize(items=items, users=max(100, items // 4), mean_length=8)
    raise ValueError(f"scale must be one of {list(SCALES)} or an item count, got {scale!r}")


class GroupSampler:
    """Draws members of a group (a topic) with probability proportional to a weight, many draws at once.

    Members are sorted by group and each group's cumulative weights are squeezed into (g, g + 1], so one
    `searchsorted` over all of them answers a whole batch of draws for different groups.
    """

    def __init__(self, groups: np.ndarray, weights: np.ndarray, n_groups: int):
        order = np.lexsort((np.arange(len(groups)), groups))
        sorted_groups, sorted_weights = groups[order], weights[order]
        totals = np.bincount(sorted_groups, weights=sorted_weights, minlength=n_groups)
        self.sizes = np.bincount(sorted_groups, minlength=n_groups)
        starts = np.cumsum(totals) - totals
        within = (np.cumsum(sorted_weights) - starts[sorted_groups]) / totals[sorted_groups]
        ends = np.cumsum(self.sizes) - 1
        within[ends[self.sizes > 0]] = 1.0
        self.members = order
        self.keys = sorted_groups + within

    def draw(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if (self.sizes[groups] == 0).any():
            raise ValueError("GroupSampler.draw: asked for a group without members")
        positions = np.searchsorted(self.keys, groups + rng.random(len(groups)), side="left")
        return self.members[np.minimum(positions, len(self.members) - 1)]


def _balanced(n: int, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Group labels for n things, every group used (n >= n_groups) and sizes within one of each other."""
    return rng.permutation(np.arange(n) % n_groups)


def _names(count: int, rng: np.random.Generator) -> list[str]:
    first = rng.integers(len(FIRST_NAMES), size=count)
    last = rng.integers(len(LAST_NAMES), size=count)
    return [f"{FIRST_NAMES[f]} {LAST_NAMES[la]}" for f, la in zip(first.tolist(), last.tolist(), strict=True)]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class _Catalog:
    """The world's items as parallel arrays; primary items (episodes then audiobooks) drive behaviour."""

    n_artists: int
    n_shows: int
    n_episodes: int
    n_audiobooks: int
    artist_topic: np.ndarray
    show_topic: np.ndarray
    show_subject: np.ndarray
    show_host: np.ndarray
    show_weight: np.ndarray
    episode_show: np.ndarray
    episode_number: np.ndarray
    episode_subject: np.ndarray
    episode_format: np.ndarray
    book_topic: np.ndarray
    book_subject: np.ndarray
    book_author: np.ndarray

    @property
    def primary_topic(self) -> np.ndarray:
        return np.concatenate([self.show_topic[self.episode_show], self.book_topic])

    @property
    def next_episode(self) -> np.ndarray:
        """Primary index of the next episode of the same show, -1 after a show's last episode (and books)."""
        following = np.arange(1, self.n_episodes + 1)
        same_show = np.zeros(self.n_episodes, dtype=bool)
        same_show[:-1] = self.episode_show[1:] == self.episode_show[:-1]
        return np.concatenate([np.where(same_show, following, -1), np.full(self.n_audiobooks, -1)])


def _build_catalog(size: WorldSize, rng: np.random.Generator) -> _Catalog:
    n_artists = max(N_TOPICS, round(0.08 * size.items))
    n_shows = max(N_TOPICS, round(0.08 * size.items))
    n_audiobooks = max(N_TOPICS, round(0.2 * size.items))
    n_episodes = size.items - n_artists - n_shows - n_audiobooks
    if n_episodes < 2 * n_shows:
        raise ValueError(f"{size.items} items are too few for {n_shows} shows of at least 2 episodes")
    artist_topic = _balanced(n_artists, N_TOPICS, rng)
    artists_by_topic = GroupSampler(artist_topic, np.ones(n_artists), N_TOPICS)
    show_topic = _balanced(n_shows, N_TOPICS, rng)
    book_topic = _balanced(n_audiobooks, N_TOPICS, rng)
    show_lengths = 2 + rng.multinomial(n_episodes - 2 * n_shows, rng.dirichlet(np.full(n_shows, 2.0)))
    episode_show = np.repeat(np.arange(n_shows), show_lengths)
    show_start = np.cumsum(show_lengths) - show_lengths
    show_subject = rng.integers(N_SUBJECTS, size=n_shows)
    # Episodes mostly stay on their show's subject, sometimes wander to another of the topic's subjects.
    wander = rng.random(n_episodes) < 0.4
    episode_subject = np.where(wander, rng.integers(N_SUBJECTS, size=n_episodes), show_subject[episode_show])
    return _Catalog(
        n_artists=n_artists,
        n_shows=n_shows,
        n_episodes=n_episodes,
        n_audiobooks=n_audiobooks,
        artist_topic=artist_topic,
        show_topic=show_topic,
        show_subject=show_subject,
        show_host=artists_by_topic.draw(show_topic, rng),
        show_weight=rng.lognormal(0.0, 1.0, n_shows),
        episode_show=episode_show,
        episode_number=np.arange(n_episodes) - show_start[episode_show] + 1,
        episode_subject=episode_subject,
        episode_format=rng.integers(len(EPISODE_FORMATS), size=n_episodes),
        book_topic=book_topic,
        book_subject=rng.integers(N_SUBJECTS, size=n_audiobooks),
        book_author=artists_by_topic.draw(book_topic, rng),
    )


@dataclass
class _Behaviour:
    """Users' sequences as flat arrays (user-major, time-ordered) plus what the profiles need."""

    lengths: np.ndarray
    primary: np.ndarray
    timestamps: np.ndarray
    context_code: np.ndarray
    interests: np.ndarray
    interest_weights: np.ndarray
    device: np.ndarray
    hour: np.ndarray


def _simulate(cat: _Catalog, size: WorldSize, rng: np.random.Generator, progress: bool) -> _Behaviour:
    n_users = size.users
    topic = cat.primary_topic
    popularity = np.concatenate(
        [
            cat.show_weight[cat.episode_show]
            / np.sqrt(cat.episode_number)
            * rng.lognormal(0.0, 0.5, cat.n_episodes),
            rng.lognormal(0.0, 1.0, cat.n_audiobooks),
        ]
    )
    by_topic = GroupSampler(topic, popularity, N_TOPICS)
    related = by_topic.draw(topic, rng)
    next_episode = cat.next_episode

    lengths = np.minimum(2 + rng.geometric(1.0 / (size.mean_length - 2), n_users), MAX_SEQUENCE)
    n_interests = rng.integers(1, 4, size=n_users)
    interests = np.argsort(rng.random((n_users, N_TOPICS)), axis=1)[:, :3]
    weights = rng.dirichlet(np.ones(3), size=n_users) * (np.arange(3) < n_interests[:, None])
    weights /= weights.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(weights, axis=1)
    usual_device = rng.integers(len(DEVICES), size=n_users)
    usual_hour = rng.choice(24, size=n_users, p=_hour_profile())

    clock = EPOCH + rng.uniform(0, 90 * DAY, n_users)
    last = np.full(n_users, -1)
    session_topic = np.zeros(n_users, dtype=np.int64)
    # Per step, only the users whose sequence is still running are simulated; their events are
    # collected step by step and put in user-major order at the end (memory ~ number of interactions).
    event_user, event_item, event_time, event_code = [], [], [], []
    for step in tqdm(range(int(lengths.max())), desc="simulate listening", disable=not progress):
        active = np.flatnonzero(lengths > step)
        n = len(active)
        new_session = np.ones(n, dtype=bool) if step == 0 else rng.random(n) < P_NEW_SESSION
        pick = np.minimum((rng.random(n)[:, None] > cumulative[active]).sum(axis=1), n_interests[active] - 1)
        explore = rng.random(n) < P_EXPLORE_TOPIC
        fresh_topic = np.where(explore, rng.integers(N_TOPICS, size=n), interests[active, pick])
        topic_now = np.where(new_session, fresh_topic, session_topic[active])
        session_topic[active] = topic_now
        # A new session starts on a later day near the user's usual hour; within a session items follow
        # each other minutes apart.
        now = clock[active]
        day = np.floor(now / DAY) + (0 if step == 0 else rng.geometric(0.5, n))
        session_start = np.maximum(
            day * DAY + (usual_hour[active] + rng.normal(0, 1.0, n)) * 3600.0, now + 60.0
        )
        now = np.where(new_session, session_start, now + rng.exponential(1500.0, n) + 60.0)
        clock[active] = now

        previous = last[active]
        draw = rng.random(n)
        following = np.where(previous >= 0, next_episode[np.maximum(previous, 0)], -1)
        binge = (following >= 0) & (draw < np.where(new_session, P_BINGE_NEW_SESSION, P_BINGE_IN_SESSION))
        hop = (previous >= 0) & ~binge & (draw > 1.0 - P_RELATED)
        item = np.where(
            binge, following, np.where(hop, related[np.maximum(previous, 0)], by_topic.draw(topic_now, rng))
        )
        last[active] = item

        searched = rng.random(n) < P_SEARCH
        surface = np.where(
            binge,
            np.where(new_session, SURFACES.index("library"), SURFACES.index("autoplay")),
            np.where(
                hop,
                SURFACES.index("recommended"),
                np.where(searched, SURFACES.index("search"), SURFACES.index("home")),
            ),
        )
        device = np.where(
            rng.random(n) < P_USUAL_DEVICE, usual_device[active], rng.integers(len(DEVICES), size=n)
        )
        hour = (np.floor(now / 3600.0) % 24).astype(np.int64)
        event_user.append(active)
        event_item.append(item)
        event_time.append(now)
        event_code.append((surface * len(DEVICES) + device) * 24 + hour)
    order = np.argsort(np.concatenate(event_user), kind="stable")
    return _Behaviour(
        lengths=lengths,
        primary=np.concatenate(event_item)[order],
        timestamps=np.round(np.concatenate(event_time)[order], 0),
        context_code=np.concatenate(event_code)[order],
        interests=interests,
        interest_weights=weights,
        device=usual_device,
        hour=usual_hour,
    )


def _hour_profile() -> np.ndarray:
    """How likely each hour of the day is a user's usual listening hour: commutes and evenings."""
    hours = np.arange(24)
    density = 0.2 + np.exp(-((hours - 8) ** 2) / 4) + 1.3 * np.exp(-((hours - 20) ** 2) / 6)
    return density / density.sum()


def _context_strings() -> np.ndarray:
    return np.array(
        [
            storage_json({"surface": s, "device": d, "hour": h})
            for s in SURFACES
            for d in DEVICES
            for h in range(24)
        ],
        dtype=object,
    )


def _dictionary_strings(codes: np.ndarray, dictionary: np.ndarray) -> pa.Array:
    """Strings chosen by code from a dictionary, built in Arrow (no Python string per row)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int64()), pa.array(dictionary, pa.string())
    ).cast(pa.string())


def _item_table(cat: _Catalog, counts: np.ndarray, rng: np.random.Generator) -> dict[str, list]:
    """Ids, titles, texts, attributes and links of every item, in the order artists, shows, episodes, books.

    Object fields are written straight in `storage_json`'s canonical form (sorted keys) from pre-encoded
    vocabulary pieces: json.dumps per item would dominate a 1M-item world.
    """
    q = json.dumps
    artist_ids = [f"artist-{i}" for i in range(cat.n_artists)]
    show_ids = [f"show-{i}" for i in range(cat.n_shows)]
    artist_names = _names(cat.n_artists, rng)
    prefix = rng.integers(len(TOPICS[0].show_prefixes), size=cat.n_shows).tolist()
    noun = rng.integers(len(TOPICS[0].show_nouns), size=cat.n_shows).tolist()
    show_titles = [
        f"{TOPICS[t].show_prefixes[p]} {TOPICS[t].show_nouns[n]}"
        for t, p, n in zip(cat.show_topic.tolist(), prefix, noun, strict=True)
    ]
    n_keywords = len(TOPICS[0].keywords)
    first_keyword = rng.integers(n_keywords, size=len(counts))
    second_keyword = (first_keyword + rng.integers(1, n_keywords, size=len(counts))) % n_keywords
    minutes = rng.integers(15, 90, size=cat.n_episodes).tolist()
    hours = np.round(rng.uniform(3, 20, size=cat.n_audiobooks), 1).tolist()
    pattern = rng.integers(len(BOOK_PATTERNS), size=cat.n_audiobooks).tolist()
    genre = [q(t.name) for t in TOPICS]
    subject_titles = [[_capitalised(subject) for subject in t.subjects] for t in TOPICS]
    format_phrases = [f"{_article(f)} {f}" for f in EPISODE_FORMATS]
    format_json = [q(f) for f in EPISODE_FORMATS]

    hosted = np.bincount(cat.show_host, minlength=cat.n_artists).tolist()
    written = np.bincount(cat.book_author, minlength=cat.n_artists).tolist()
    ids, titles, texts, attributes, links = list(artist_ids), list(artist_names), [], [], []
    topics = np.concatenate(
        [cat.artist_topic, cat.show_topic, cat.show_topic[cat.episode_show], cat.book_topic]
    )
    pairs = [
        (TOPICS[t].keywords[k1], TOPICS[t].keywords[k2])
        for t, k1, k2 in zip(topics.tolist(), first_keyword.tolist(), second_keyword.tolist(), strict=True)
    ]
    for i, t in enumerate(cat.artist_topic.tolist()):
        roles = [r for r, n in (("podcast host", hosted[i]), ("author", written[i])) if n] or ["voice artist"]
        k1, k2 = pairs[i]
        texts.append(
            f"{artist_names[i]} is {_article(roles[0])} {' and '.join(roles)} known for {TOPICS[t].name}: "
            f"{k1}, {k2} and {TOPICS[t].subjects[i % N_SUBJECTS]}."
        )
        attributes.append(f'{{"genre": {genre[t]}, "roles": {q(roles)}}}')
        links.append("{}")
    offset = cat.n_artists
    episodes_per_show = np.bincount(cat.episode_show, minlength=cat.n_shows).tolist()
    for i, (t, host, subject) in enumerate(
        zip(cat.show_topic.tolist(), cat.show_host.tolist(), cat.show_subject.tolist(), strict=True)
    ):
        k1, k2 = pairs[offset + i]
        ids.append(show_ids[i])
        titles.append(show_titles[i])
        texts.append(
            f"A {TOPICS[t].name} podcast hosted by {artist_names[host]} about "
            f"{TOPICS[t].subjects[subject]}, {k1} and {k2}."
        )
        attributes.append(f'{{"episodes": {episodes_per_show[i]}, "genre": {genre[t]}}}')
        links.append(f'{{"artist": ["{artist_ids[host]}"]}}')
    offset += cat.n_shows
    for i, (show, number, subject, fmt) in enumerate(
        zip(
            cat.episode_show.tolist(),
            cat.episode_number.tolist(),
            cat.episode_subject.tolist(),
            cat.episode_format.tolist(),
            strict=True,
        )
    ):
        t, host = int(cat.show_topic[show]), int(cat.show_host[show])
        k1, k2 = pairs[offset + i]
        ids.append(f"episode-{i}")
        titles.append(f"{show_titles[show]} #{number}: {subject_titles[t][subject]}")
        texts.append(
            f"Episode {number} of {show_titles[show]}, {format_phrases[fmt]} on {TOPICS[t].subjects[subject]} "
            f"({TOPICS[t].name}) with {artist_names[host]}: {k1}, {k2}."
        )
        attributes.append(
            f'{{"duration_min": {minutes[i]}, "episode_number": {number}, "format": {format_json[fmt]}}}'
        )
        links.append(f'{{"artist": ["{artist_ids[host]}"], "show": ["{show_ids[show]}"]}}')
    offset += cat.n_episodes
    for i, (t, author, subject) in enumerate(
        zip(cat.book_topic.tolist(), cat.book_author.tolist(), cat.book_subject.tolist(), strict=True)
    ):
        k1, k2 = pairs[offset + i]
        ids.append(f"audiobook-{i}")
        titles.append(
            BOOK_PATTERNS[pattern[i]].format(s=TOPICS[t].subjects[subject], S=subject_titles[t][subject])
        )
        texts.append(
            f"An audiobook on {TOPICS[t].subjects[subject]} ({TOPICS[t].name}) by {artist_names[author]}, "
            f"{hours[i]} hours: {k1}, {k2}."
        )
        attributes.append(f'{{"duration_hours": {hours[i]!r}, "genre": {genre[t]}}}')
        links.append(f'{{"artist": ["{artist_ids[author]}"]}}')
    types = np.repeat(
        np.array(["artist", "show", "episode", "audiobook"], dtype=object),
        [cat.n_artists, cat.n_shows, cat.n_episodes, cat.n_audiobooks],
    ).tolist()
    return {
        "id": ids,
        "type": types,
        "title": titles,
        "text": texts,
        "attributes": attributes,
        "links": links,
        "popularity": counts.astype(np.float64),
    }


def _item_popularity(cat: _Catalog, behaviour: _Behaviour) -> np.ndarray:
    """Interaction counts; a show counts its episodes' plays, an artist the plays of what they host/wrote."""
    primary = np.bincount(behaviour.primary, minlength=cat.n_episodes + cat.n_audiobooks).astype(np.float64)
    episodes, books = primary[: cat.n_episodes], primary[cat.n_episodes :]
    shows = np.bincount(cat.episode_show, weights=episodes, minlength=cat.n_shows)
    artists = np.bincount(cat.show_host, weights=shows, minlength=cat.n_artists) + np.bincount(
        cat.book_author, weights=books, minlength=cat.n_artists
    )
    return np.concatenate([artists, shows, episodes, books])


DEVICE_PHRASES = {
    "phone": "on the phone",
    "smart speaker": "on a smart speaker",
    "desktop": "at the desktop",
    "car": "in the car",
    "tablet": "on a tablet",
}
QUERY_TEMPLATES = {
    "episode": ("podcast episodes about {subject}", "{topic} episodes on {subject}"),
    "show": ("{topic} podcasts covering {subject}", "shows about {subject}"),
    "audiobook": ("audiobooks about {subject}", "{topic} books on {subject}"),
    "artist": ("{topic} hosts and authors", "who makes the best {topic} content"),
}


def _queries(cat: _Catalog, items: dict[str, list], rng: np.random.Generator) -> dict[str, list]:
    """Search queries per (type, topic, subject) group; relevant = the group's most popular items."""
    popularity = np.asarray(items["popularity"])
    offsets = np.cumsum([0, cat.n_artists, cat.n_shows, cat.n_episodes])
    groups = {  # type -> (first row, topic per item, subject per item or None)
        "artist": (offsets[0], cat.artist_topic, None),
        "show": (offsets[1], cat.show_topic, cat.show_subject),
        "episode": (offsets[2], cat.show_topic[cat.episode_show], cat.episode_subject),
        "audiobook": (offsets[3], cat.book_topic, cat.book_subject),
    }
    records = []
    for entity_type, (first, topics, subjects) in groups.items():
        keys = topics * N_SUBJECTS + (0 if subjects is None else subjects)
        order = np.lexsort((-popularity[first : first + len(keys)], keys))
        bounds = np.flatnonzero(np.diff(keys[order])) + 1
        for members in np.split(order, bounds):
            key = int(keys[members[0]])
            topic = TOPICS[key // N_SUBJECTS]
            relevant = [items["id"][first + m] for m in members[:MAX_RELEVANT].tolist()]
            for variant, template in enumerate(QUERY_TEMPLATES[entity_type]):
                text = template.format(topic=topic.name, subject=topic.subjects[key % N_SUBJECTS])
                records.append((f"q-{entity_type}-{key}-{variant}", text, entity_type, relevant, key))
    group_ids = sorted({(r[2], r[4]) for r in records})
    held_out = {group_ids[i] for i in rng.permutation(len(group_ids))[: max(1, round(0.2 * len(group_ids)))]}
    return {
        "id": [r[0] for r in records],
        "text": [r[1] for r in records],
        "type": [r[2] for r in records],
        "items": [r[3] for r in records],
        "split": ["test" if (r[2], r[4]) in held_out else "train" for r in records],
    }


def _profiles(behaviour: _Behaviour, user_ids: list[str], primary_topic: np.ndarray) -> dict[str, list]:
    """Ground-truth profile per user: the interests that drove the simulation, in words and as topics."""
    last_rows = np.cumsum(behaviour.lengths) - 1
    recent_topic = primary_topic[behaviour.primary[last_rows]].tolist()
    texts, topics, attributes = [], [], []
    for u in range(len(user_ids)):
        ranked = [
            (TOPICS[t].name, float(w))
            for w, t in sorted(
                zip(behaviour.interest_weights[u].tolist(), behaviour.interests[u].tolist(), strict=True),
                reverse=True,
            )
            if w > 0
        ]
        names = [name for name, _ in ranked]
        liked = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        recent = TOPICS[recent_topic[u]].name
        lately = f"Lately listening to {recent}." if recent not in names else f"Lately back on {recent}."
        device, hour = DEVICES[behaviour.device[u]], int(behaviour.hour[u])
        texts.append(
            f"Mostly listens to {liked}. Usually {DEVICE_PHRASES[device]}, around {hour:02d}:00. {lately}"
        )
        topics.append(names)
        weights_json = ", ".join(f"{json.dumps(n)}: {round(w, 3)!r}" for n, w in sorted(ranked))
        attributes.append(
            f'{{"interest_weights": {{{weights_json}}}, "usual_device": {json.dumps(device)}, '
            f'"usual_hour": {hour}}}'
        )
    return {"user": user_ids, "text": texts, "topics": topics, "attributes": attributes}


def generate_world(
    out: str | os.PathLike,
    seed: int = 0,
    scale: str | int = "small",
    table_format: str = "auto",
    progress: bool = False,
) -> Path:
    """Write a demo world dataset into `out` (deterministic for a seed); return `out`.

    `table_format` "auto" writes JSONL for the named scales and Parquet for item-count scales (benchmarks).
    """
    size = world_size(scale)
    if table_format == "auto":
        table_format = "jsonl" if isinstance(scale, str) and scale in SCALES else "parquet"
    out = Path(out)
    rng = np.random.default_rng(seed)
    cat = _build_catalog(size, rng)
    behaviour = _simulate(cat, size, rng, progress)
    counts = _item_popularity(cat, behaviour)
    items = _item_table(cat, counts, rng)
    first_primary = cat.n_artists + cat.n_shows
    user_ids = [f"user-{u}" for u in range(size.users)]

    write_table(out, "items", items, table_format)
    device_json = np.array([storage_json({"device": d}) for d in DEVICES])
    write_table(
        out,
        "users",
        {"id": user_ids, "attributes": _dictionary_strings(behaviour.device, device_json)},
        table_format,
    )
    write_table(
        out,
        "interactions",
        {
            "user": _dictionary_strings(
                np.repeat(np.arange(size.users), behaviour.lengths), np.array(user_ids)
            ),
            "item": _dictionary_strings(behaviour.primary + first_primary, np.array(items["id"])),
            "timestamp": behaviour.timestamps,
            "context": _dictionary_strings(behaviour.context_code, _context_strings()),
        },
        table_format,
    )
    write_table(out, "queries", _queries(cat, items, rng), table_format)
    write_table(out, "profiles", _profiles(behaviour, user_ids, cat.primary_topic), table_format)
    write_spec(
        out,
        DatasetSpec(
            "demo",
            (
                EntityType("show", "a podcast series, hosted by an artist"),
                EntityType("episode", "one episode of a show; links to its show and the show's host"),
                EntityType("audiobook", "an audiobook; links to its author"),
                EntityType("artist", "a podcast host or audiobook author"),
            ),
            {"protocol": "leave_one_out"},
            f"Synthetic audio-streaming world (seed {seed}, scale {scale}).",
        ),
    )
    return out
