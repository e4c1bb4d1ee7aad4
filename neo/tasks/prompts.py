"""Prompt templates and the inference-side prompt builders.

Training examples and inference requests are rendered by the same functions here, so a prompt the
API or the evaluation builds is byte-identical to what the model saw in training. Every builder
returns the full prompt string, chat wrapping included, ending exactly where the answer starts.

Templates come in two disjoint pools: `train` (used to build training data) and `heldout` (never
trained on, used to measure whether control -- task, target type, format, count, familiarity --
survives paraphrasing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

OutputFormat = Literal["ids", "text", "mixed"]
Familiarity = Literal["familiar", "unfamiliar"]
Pool = Literal["train", "heldout"]
OUTPUT_FORMATS: tuple[str, ...] = ("ids", "text", "mixed")
FAMILIARITY: tuple[str, ...] = ("familiar", "unfamiliar")
POOLS: tuple[str, ...] = ("train", "heldout")
HISTORY_HEADER = "History:"
SECONDS_PER_DAY = 86400.0

_IRREGULAR_PLURALS = {
    "category": "categories",
    "person": "people",
    "series": "series",
    "company": "companies",
}


def plural(entity_type: str) -> str:
    """English plural of an entity type name, for the sentences in templates."""
    if entity_type in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[entity_type]
    if entity_type.endswith(("s", "x", "ch", "sh")):
        return entity_type + "es"
    return entity_type + "s"


def count_phrase(entity_type: str, k: int) -> str:
    """'a show' / '5 shows': the count control as the templates say it."""
    if k == 1:
        article = "an" if entity_type[:1].lower() in "aeiou" else "a"
        return f"{article} {entity_type}"
    return f"{k} {plural(entity_type)}"


# ----- templates ------------------------------------------------------------------------------
# Placeholders: {type} (singular), {types} (plural), {n_items} ("a show" / "5 shows"), {query}.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "recommend": {
        "train": (
            "Recommend {n_items} for this user.",
            "Based on the history below, suggest {n_items} the user is likely to enjoy next.",
            "Which {types} should this user get next? Give {n_items}.",
            "Predict the next {type} this user will engage with; list {n_items}.",
            "Given what this person consumed recently, pick {n_items} for them.",
            "Suggest {n_items} tailored to the listening history below.",
            "You are a recommender. Return {n_items} for the user whose history follows.",
            "Find {n_items} that fit this user's taste.",
            "Here is a user's recent activity. Recommend {n_items}.",
            "What {types} would you recommend to this user? Provide {n_items}.",
            "Choose {n_items} this user will most probably want next.",
            "Personalise: select {n_items} for the user below.",
            "From the catalog, pick {n_items} matching the user's history.",
            "The user's history is shown below. Name {n_items} to recommend.",
            "Recommend the next {types} for this user ({n_items}).",
            "Using the interaction history, propose {n_items}.",
            "List {n_items} that this user should try next.",
            "Which {type} comes next for this user? Answer with {n_items}.",
            "Generate {n_items} as personalised recommendations.",
            "Look at the history and recommend {n_items}.",
        ),
        "heldout": (
            "Taking this person's past activity into account, which {types} would suit them? Return {n_items}.",
            "Curate {n_items} for someone with the history shown.",
            "Act as a personal curator and hand-pick {n_items} for this user.",
            "If you had to queue up {n_items} for this user, which would they be?",
            "Propose {n_items} this user has good reason to like, judging by the history.",
        ),
    },
    "search": {
        "train": (
            "Find {n_items} matching the query: {query}",
            'Search the catalog for {n_items} relevant to "{query}".',
            "Query: {query}\nReturn {n_items}.",
            'Which {types} best match the search "{query}"? Give {n_items}.',
            "Retrieve {n_items} for this search: {query}",
            'A user searched for "{query}". List {n_items}.',
            'Look up {n_items} that answer the query "{query}".',
            'Return the top {types} for the query "{query}" ({n_items}).',
            "Search: {query}. Show {n_items}.",
            'Find the {types} someone typing "{query}" is looking for; list {n_items}.',
            "Match this query to {n_items}: {query}",
            "Give {n_items} relevant to: {query}",
            'You are a search engine. Results ({n_items}) for "{query}":',
            'Which {type} is meant by "{query}"? Answer with {n_items}.',
            'Retrieve the most relevant {types} for "{query}"; return {n_items}.',
            'Searching for "{query}" -- find {n_items}.',
            'Locate {n_items} in the catalog for the request "{query}".',
            'Answer the search query "{query}" with {n_items}.',
            "Top {types} for: {query}. Provide {n_items}.",
            'Help the user find {n_items} for "{query}".',
        ),
        "heldout": (
            'Someone is looking for "{query}". What {types} would satisfy them? Return {n_items}.',
            'Rank the catalog for the text "{query}" and report {n_items}.',
            "I need {n_items} about this: {query}",
            'Dig up {n_items} that correspond to "{query}".',
            'The request reads "{query}"; respond with {n_items}.',
        ),
    },
    "recsplain": {
        "train": (
            "Recommend {n_items} for this user and explain why.",
            "Suggest {n_items} and justify the choice with the user's history.",
            "Pick {n_items} for this user, then say briefly why it fits.",
            "Which {type} should this user try next, and why?",
            "Recommend {n_items} and give a short, grounded explanation.",
            "Choose {n_items} for the user below and explain the recommendation.",
            "Give {n_items} with a one-sentence reason based on the history.",
            "Name {n_items} for this user and tell them why they will like it.",
            "Recommend {n_items}; explain the link to what the user already consumed.",
            "Select {n_items} and describe why it matches the user's taste.",
            "Propose {n_items} for this user with an explanation.",
            "What {type} would you recommend to this user? Explain your pick.",
            "Suggest {n_items} and point to the history items that motivate it.",
            "Recommend {n_items} and write a short justification.",
            "Find {n_items} for the user and explain the reasoning.",
            "Pick {n_items}; then explain, using the history, why it is a good fit.",
            "Offer {n_items} with a brief explanation grounded in the user's past activity.",
            "Recommend {n_items} and describe what connects it to this user.",
            "Give one recommendation ({n_items}) and the reason for it.",
            "Choose {n_items} and explain it to the user in one or two sentences.",
        ),
        "heldout": (
            "Tell this user about {n_items} they would appreciate and why you think so.",
            "Make {n_items} recommendation with a rationale drawn from the history.",
            "Justify a pick of {n_items} for this person using what they did before.",
            "Which {type} suits this user? Defend your answer briefly.",
            "Pitch {n_items} to the user, citing their history.",
        ),
    },
    "profile": {
        "train": (
            "Describe this user's interests.",
            "Write a short profile of this user based on their history.",
            "Summarise what this user likes.",
            "What are this user's tastes? Answer in a sentence or two.",
            "Build a natural-language interest profile for the user below.",
            "Characterise the user from the history below.",
            "In plain words, what is this user into?",
            "Give a brief description of this person's preferences.",
            "Profile the user: which topics and kinds of items do they prefer?",
            "Summarise the user's interests in natural language.",
            "Describe the tastes revealed by this history.",
            "Write a user profile from the interactions below.",
            "What does this history tell us about the user? Describe their interests.",
            "Explain in a few words what this user enjoys.",
            "Produce a short interest summary for this user.",
            "Infer the user's interests from their history.",
            "Tell me what kind of content this user likes.",
            "Describe the user's preferences as a short profile.",
            "Write one or two sentences about this user's interests.",
            "Summarise this user's taste profile.",
        ),
        "heldout": (
            "Who is this user, judging only by what they consumed? Describe their interests.",
            "Sketch the interests of the person behind this history.",
            "Condense this history into a description of the user's tastes.",
            "If you had to introduce this user by their interests, what would you say?",
            "Read the history and report the user's main interests.",
        ),
    },
    "rec_sequence": {
        "train": (
            "List the items this user interacted with, in order.",
            "Recall this user's history, oldest first.",
            "Write out the sequence of items this user consumed.",
            "Reproduce the user's interaction history.",
            "Give this user's history in time order.",
            "What did this user consume, in order?",
            "Continue the user's history from the start.",
            "Enumerate the items in this user's history.",
        ),
        "heldout": (
            "Trace this user's path through the catalog.",
            "Play back everything this user engaged with, in sequence.",
        ),
    },
    "children": {
        "train": (
            "List the {types} of {item} in order, from number {first}.",
            "Which {types} does {item} have? In order, starting at number {first}.",
            "Give the {types} of {item}, one per line, from the {first_ordinal} on.",
            "Enumerate {item}'s {types} in sequence, beginning with number {first}.",
            "What are the {types} of {item}, in order from number {first}?",
            "Show the running order of {item}'s {types}, from number {first}.",
            "In what order do the {types} of {item} come? Start at number {first}.",
            "Name {item}'s {types} one after another, from the {first_ordinal}.",
        ),
        "heldout": (
            "Starting with number {first}, which {types} follow one another in {item}?",
            "Walk through {item}'s {types} in order from the {first_ordinal}.",
        ),
    },
    "next_items": {
        "train": (
            "Which items do users play right after {item}?",
            "After {item}, what comes next?",
            "Users who finished {item} went on to which items?",
            "What do people engage with next after {item}?",
            "List what usually follows {item}.",
            "{item} -- what do users pick next?",
            "Name the items most often consumed right after {item}.",
            "What is typically next after {item}?",
        ),
        "heldout": (
            "Once someone is done with {item}, where do they go next?",
            "Predict the usual follow-ups of {item}.",
        ),
    },
    "sid2text": {
        "train": (
            "What is {item}?",
            "Describe {item}.",
            "Give the title and description of {item}.",
            "Which {type} is {item}?",
            "Tell me about the {type} {item}.",
            "Title and summary of {item}:",
            "Explain what {item} is.",
            "Name and describe the {type} {item}.",
        ),
        "heldout": ("What can you say about {item}?", "Identify the {type} {item} in words."),
    },
    "text2sid": {
        "train": (
            "Which {type} is this? {description}",
            "Find the {type} described here: {description}",
            "Give the ID of the {type}: {description}",
            "{description}\nWhich {type} is it?",
            "Identify the {type} matching this description: {description}",
            "Return the {type} with this title and description: {description}",
            "What is the ID of this {type}? {description}",
            "Map this description to its {type}: {description}",
        ),
        "heldout": (
            "Point to the {type} that this text describes: {description}",
            "Here is a {type}: {description}\nWhat is its ID?",
        ),
    },
    "sid2type": {
        "train": (
            "What kind of entity is {item}?",
            "Entity type of {item}?",
            "Which type does {item} belong to?",
            "Is {item} a {types_list}?",
            "Classify {item} by entity type.",
            "What sort of catalog entry is {item}?",
            "Name the type of {item}.",
            "Tell me the entity type of {item}.",
        ),
        "heldout": ("{item} -- what type of item is that?", "Determine the entity type for {item}."),
    },
    "name2sid": {
        "train": (
            'Which {type} is called "{name}"?',
            'Give the ID of the {type} "{name}".',
            "Find the {type} named {name}.",
            "{type} name: {name}. ID?",
            "What is the ID of the {type} {name}?",
            'Look up the {type} "{name}".',
            'Map the name "{name}" to its {type}.',
            'Return the {type} whose name is "{name}".',
        ),
        "heldout": ('Resolve "{name}" to a {type}.', "I mean the {type} {name}: which one is that?"),
    },
    "sid2name": {
        "train": (
            "What is the name of {item}?",
            "Name the {type} {item}.",
            "Which {type} is {item}? Give its name.",
            "{item} is called what?",
            "What is {item} called?",
            "Give the name of the {type} {item}.",
            "Tell me the name of {item}.",
            "Name of {item}:",
        ),
        "heldout": ("Spell out the name behind {item}.", "Say which {type} {item} stands for, by name."),
    },
}

FORMAT_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "ids": {
        "train": (
            "Answer with item IDs only.",
            "Reply with IDs, one per line.",
            "Output only the IDs.",
            "Respond with catalog IDs.",
            "Use IDs, no titles.",
        ),
        "heldout": ("Just the identifiers, please.", "IDs and nothing else."),
    },
    "text": {
        "train": (
            "Answer with titles only.",
            "Reply with names, one per line.",
            "Write the titles, no IDs.",
            "Respond in plain text with their names.",
            "Give names, not IDs.",
        ),
        "heldout": ("Just the names, please.", "Titles and nothing else."),
    },
    "mixed": {
        "train": (
            "Give each ID followed by its title.",
            "Reply with ID and title on each line.",
            "List IDs together with their names.",
            "For each, write the ID, then the title.",
            "Answer with IDs and titles.",
        ),
        "heldout": ("Identifiers with their names, please.", "Pair every ID with its title."),
    },
}

FAMILIARITY_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "familiar": {
        "train": (
            "Pick from what the user already knows.",
            "Stick to familiar favourites.",
            "Only things the user has engaged with before.",
            "Choose familiar items.",
        ),
        "heldout": ("Keep to what they already like and know.",),
    },
    "unfamiliar": {
        "train": (
            "Only suggest things new to the user.",
            "Help the user discover something new.",
            "Nothing the user has seen before.",
            "Choose unfamiliar items for discovery.",
        ),
        "heldout": ("Surprise them with something they have never tried.",),
    },
}


def templates(task: str, pool: Pool = "train") -> tuple[str, ...]:
    """The instruction templates of one task in one pool."""
    if task not in TEMPLATES:
        raise KeyError(f"no templates for task {task!r}; known: {sorted(TEMPLATES)}")
    if pool not in POOLS:
        raise ValueError(f"template pool must be one of {POOLS}, got {pool!r}")
    return TEMPLATES[task][pool]


def _pick(options: Sequence[str], choice: int) -> str:
    return options[choice % len(options)]


# ----- chat wrapping --------------------------------------------------------------------------
_MARKER = "\x00NEO_CONTENT\x00"


@dataclass(frozen=True)
class ChatFormat:
    """How a user message and an answer become one string: a tokenizer's chat template or plain.

    The tokenizer's chat template is rendered once around a marker and cut into a prefix and a
    suffix, so wrapping millions of training prompts is a string concatenation, not a Jinja call.
    """

    prefix: str = "### Instruction:\n"
    suffix: str = "\n\n### Response:\n"
    end: str = ""

    @classmethod
    def plain(cls, eos_token: str | None = None) -> ChatFormat:
        """The '### Instruction / ### Response' format for tokenizers without a chat template."""
        return cls(end=eos_token or "")

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> ChatFormat:
        """Use the tokenizer's chat template if it has one, else the plain format with its EOS."""
        if not getattr(tokenizer, "chat_template", None):
            return cls.plain(getattr(tokenizer, "eos_token", None))
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": _MARKER}], tokenize=False, add_generation_prompt=True
        )
        if prompt.count(_MARKER) != 1:
            raise ValueError(
                "the tokenizer's chat template does not place the user message verbatim; "
                "neo needs a template that wraps the message without rewriting it"
            )
        prefix, suffix = prompt.split(_MARKER)
        full = tokenizer.apply_chat_template(
            [{"role": "user", "content": _MARKER}, {"role": "assistant", "content": _MARKER}], tokenize=False
        )
        after_answer = full.rsplit(_MARKER, 1)[1]
        end = after_answer.rstrip() or (getattr(tokenizer, "eos_token", None) or "")
        return cls(prefix=prefix, suffix=suffix, end=end)

    def wrap(self, user_message: str) -> str:
        """The prompt for one user message, ending where the assistant's answer starts."""
        return f"{self.prefix}{user_message}{self.suffix}"

    def to_dict(self) -> dict[str, str]:
        return {"prefix": self.prefix, "suffix": self.suffix, "end": self.end}


PLAIN = ChatFormat()


# ----- history rendering ----------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryLine:
    """One past interaction as the prompt shows it: the item's SID span, when, and in what context."""

    span: str
    timestamp: float | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryStyle:
    """What a history line shows beside the SID: the day gap to the previous line, context fields."""

    show_gaps: bool = True
    context_keys: tuple[str, ...] = ("surface",)


DEFAULT_STYLE = HistoryStyle()


def history_lines(history: Sequence[HistoryLine | str], style: HistoryStyle = DEFAULT_STYLE) -> list[str]:
    """Render each interaction as `<span> +3d app`.

    The gap is counted in whole days since the previous interaction (causal: a line never depends
    on what comes after it), so the same lines can be targets in `rec_sequence` and inputs in
    `recommend`.
    """
    lines = []
    previous: float | None = None
    for entry in history:
        if isinstance(entry, str):
            entry = HistoryLine(entry)
        parts = [entry.span]
        if style.show_gaps and entry.timestamp is not None:
            if previous is not None:
                gap = max(0.0, entry.timestamp - previous) / SECONDS_PER_DAY
                parts.append(f"+{math.floor(gap)}d")
            previous = entry.timestamp
        for key in style.context_keys:
            value = entry.context.get(key)
            if value is not None and value != "":
                parts.append(str(value))
        lines.append(" ".join(parts))
    return lines


def history_block(history: Sequence[HistoryLine | str] | str, style: HistoryStyle = DEFAULT_STYLE) -> str:
    """The history as prompt text; a `str` is taken as an already-rendered block and returned as is."""
    return history if isinstance(history, str) else "\n".join(history_lines(history, style))


# ----- instruction composition ------------------------------------------------------------------
def _controls(
    output_format: OutputFormat | None, familiarity: Familiarity | None, pool: Pool, phrasing: int
) -> str:
    """The format and familiarity sentences appended after the task sentence."""
    parts = []
    if output_format is not None:
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
        parts.append(_pick(FORMAT_PHRASES[output_format][pool], phrasing))
    if familiarity is not None:
        if familiarity not in FAMILIARITY:
            raise ValueError(f"familiarity must be one of {FAMILIARITY} or None, got {familiarity!r}")
        parts.append(_pick(FAMILIARITY_PHRASES[familiarity][pool], phrasing))
    return " ".join(parts)


def _instruction(task: str, template: int | str, pool: Pool, **values: Any) -> str:
    text = template if isinstance(template, str) else _pick(templates(task, pool), template)
    try:
        return text.format(**values)
    except KeyError as exc:
        raise ValueError(f"template {text!r} of task {task!r} uses unknown placeholder {exc}") from None


def _join(instruction: str, controls: str) -> str:
    """The task sentence, then the control sentences; a query that ends the sentence gets its full stop."""
    if not controls:
        return instruction
    if instruction and instruction[-1] not in ".?!:\"'":
        instruction += "."
    return f"{instruction} {controls}"


def recommend_prompt(
    history: Sequence[HistoryLine | str] | str,
    target_type: str,
    k: int = 1,
    output_format: OutputFormat = "ids",
    familiarity: Familiarity | None = None,
    *,
    chat: ChatFormat = PLAIN,
    template: int | str = 0,
    pool: Pool = "train",
    phrasing: int = 0,
    style: HistoryStyle = DEFAULT_STYLE,
) -> str:
    """Next-item recommendation of `k` items of `target_type`; the history comes last, right before the answer."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    instruction = _instruction(
        "recommend",
        template,
        pool,
        type=target_type,
        types=plural(target_type),
        n_items=count_phrase(target_type, k),
    )
    controls = _controls(output_format, familiarity, pool, phrasing)
    return chat.wrap(f"{_join(instruction, controls)}\n\n{HISTORY_HEADER}\n{history_block(history, style)}")


def search_prompt(
    query: str,
    target_type: str,
    k: int = 1,
    output_format: OutputFormat = "ids",
    *,
    chat: ChatFormat = PLAIN,
    template: int | str = 0,
    pool: Pool = "train",
    phrasing: int = 0,
) -> str:
    """Text query -> `k` items of `target_type`."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    instruction = _instruction(
        "search",
        template,
        pool,
        type=target_type,
        types=plural(target_type),
        n_items=count_phrase(target_type, k),
        query=query.strip(),
    )
    controls = _controls(output_format, None, pool, phrasing)
    return chat.wrap(_join(instruction, controls))


def recsplain_prompt(
    history: Sequence[HistoryLine | str] | str,
    target_type: str,
    *,
    chat: ChatFormat = PLAIN,
    template: int | str = 0,
    pool: Pool = "train",
    style: HistoryStyle = DEFAULT_STYLE,
) -> str:
    """History -> one item of `target_type` (as a SID span) followed by a short explanation."""
    instruction = _instruction(
        "recsplain",
        template,
        pool,
        type=target_type,
        types=plural(target_type),
        n_items=count_phrase(target_type, 1),
    )
    return chat.wrap(f"{instruction}\n\n{HISTORY_HEADER}\n{history_block(history, style)}")


def profile_prompt(
    history: Sequence[HistoryLine | str] | str,
    *,
    chat: ChatFormat = PLAIN,
    template: int | str = 0,
    pool: Pool = "train",
    style: HistoryStyle = DEFAULT_STYLE,
) -> str:
    """History -> a natural-language profile of the user's interests."""
    instruction = _instruction("profile", template, pool)
    return chat.wrap(f"{instruction}\n\n{HISTORY_HEADER}\n{history_block(history, style)}")


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def children_prompt(
    parent: str, child_type: str, *, first: int = 1, chat: ChatFormat = PLAIN, template: int | str = 0,
    pool: Pool = "train",
) -> str:
    """A parent item's children of one type in sibling order, from the `first`-th (1-based)."""
    return chat.wrap(
        _instruction(
            "children", template, pool, item=parent, types=plural(child_type), first=first,
            first_ordinal=ordinal(first),
        )
    )


def next_items_prompt(item: str, *, chat: ChatFormat = PLAIN, template: int | str = 0, pool: Pool = "train") -> str:
    """What users consume right after `item` (a SID span), most frequent first."""
    return chat.wrap(_instruction("next_items", template, pool, item=item))


def rec_sequence_prompt(*, chat: ChatFormat = PLAIN, template: int | str = 0, pool: Pool = "train") -> str:
    """The prompt whose answer is a user's whole history, rendered line by line as in `recommend_prompt`."""
    return chat.wrap(_instruction("rec_sequence", template, pool))


REC_PROMPTS: tuple[str, ...] = ("recommend", "sequence")
"""How a recommendation can be asked: the recommend task's prompt, or `rec_sequence_continuation`."""


def continues_history(rec_prompt: str, history_types: Iterable[str], target_type: str) -> bool:
    """Whether a recommendation is asked as the history's next line (`rec_sequence_continuation`).

    Only with `rec_prompt="sequence"` and only when the history holds an item of the target type: a
    continuation names whatever type the next line takes, so for a type the history never holds
    (show, artist in the demo world) the recommend prompt, which names the type, is used. The
    evaluator and the API both ask this, so a checkpoint is served the way it was scored.
    """
    return rec_prompt == "sequence" and target_type in history_types


def rec_sequence_continuation(
    history: Sequence[HistoryLine | str],
    *,
    chat: ChatFormat = PLAIN,
    template: int | str = 0,
    style: HistoryStyle = DEFAULT_STYLE,
) -> str:
    """A `rec_sequence` answer cut right before its next line: next-item prediction in the exact
    layout that `rec_sequence` trains at every position (SASRec's formulation), for models trained
    mostly on it. `history` must not be empty."""
    if not history:
        raise ValueError("rec_sequence_continuation needs at least one history line")
    return f"{rec_sequence_prompt(chat=chat, template=template)}{history_block(history, style)}\n"


def align_prompt(
    subtask: str,
    entity_type: str,
    *,
    item: str = "",
    description: str = "",
    name: str = "",
    type_names: Sequence[str] = (),
    chat: ChatFormat = PLAIN,
    template: int | str = 0,
    pool: Pool = "train",
) -> str:
    """Grounding prompts: sid2text, text2sid, sid2type, name2sid, sid2name."""
    types_list = " or ".join(", ".join(type_names).rsplit(", ", 1)) if type_names else entity_type
    instruction = _instruction(
        subtask,
        template,
        pool,
        item=item,
        type=entity_type,
        types=plural(entity_type),
        description=description,
        name=name,
        types_list=types_list,
    )
    return chat.wrap(instruction)


def generic_prompt(instruction: str, *, chat: ChatFormat = PLAIN) -> str:
    """Any free-form instruction, wrapped exactly like the task prompts."""
    return chat.wrap(instruction)


# ----- tokenizer corpus -----------------------------------------------------------------------
def prompt_corpus(entity_types: Sequence[str]) -> list[str]:
    """The fixed words of every training prompt template, rendered for these entity types.

    A tokenizer trained on a catalog alone splits neo's own instructions into bytes (Beauty's
    catalog has no text: its 60-token prompt outweighed the history it framed). Held-out templates
    stay out: steerability is measured on phrasings the model and its tokenizer never saw.
    """
    types = list(entity_types) or ["item"]
    types_list = " or ".join(", ".join(types).rsplit(", ", 1))
    texts = [HISTORY_HEADER, PLAIN.prefix, PLAIN.suffix, "user", "assistant"]
    for pools in TEMPLATES.values():
        for template in pools["train"]:
            for entity_type in types:
                for k in (1, 10):
                    texts.append(
                        template.format(
                            type=entity_type,
                            types=plural(entity_type),
                            n_items=count_phrase(entity_type, k),
                            types_list=types_list,
                            query="",
                            description="",
                            name="",
                            item="",
                            first=1,
                            first_ordinal=ordinal(1),
                        )
                    )
    for phrases in (FORMAT_PHRASES, FAMILIARITY_PHRASES):
        for pools in phrases.values():
            texts.extend(pools["train"])
    return texts
