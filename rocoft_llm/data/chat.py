"""Chat records: OpenAI-style ``messages`` and ShareGPT ``conversations``.

* ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``
* ``{"conversations": [{"from": "system"|"human"|"gpt", "value": "..."}, ...]}``

A conversation is an optional leading system turn, then user and assistant turns alternating,
starting with the user and ending with the assistant (a user turn after the last answer teaches
nothing and is refused, not silently cut). Contents are non-empty strings. Kept records are
normalised to the ``messages`` form, so everything downstream sees one shape.

The format of a file is detected from its first record (``messages`` / ``conversations`` /
otherwise instruction records) or declared (``data.format``); every record of the file is then
checked against that one format.
"""

from __future__ import annotations

from ..errors import RoCoFTError

FORMATS = ("instruction", "messages", "sharegpt")
#: format -> (list key, role key, content key, {role as written: role})
_SHAPES = {
    "messages": (
        "messages",
        "role",
        "content",
        {"system": "system", "user": "user", "assistant": "assistant"},
    ),
    "sharegpt": ("conversations", "from", "value", {"system": "system", "human": "user", "gpt": "assistant"}),
}


def detect_format(records: list, declared: str = "auto", source: str = "") -> str:
    """The record format of one file: ``declared`` unless it is ``auto``, else from the first object."""
    if declared != "auto":
        if declared not in FORMATS:
            raise RoCoFTError(
                f"{source}: data.format {declared!r} is not one of auto, {', '.join(FORMATS)}; fix data.format."
            )
        return declared
    first = next((r for r in records if isinstance(r, dict)), {})
    for fmt, (key, *_) in _SHAPES.items():
        if key in first:
            return fmt
    return "instruction"


def list_key(fmt: str) -> str:
    """The field holding the turns (``messages`` or ``conversations``)."""
    return _SHAPES[fmt][0]


def chat_problem(record: dict, fmt: str) -> str | None:
    """Why a chat record is bad (reason key + detail naming the turn), or None."""
    key, role_key, content_key, roles = _SHAPES[fmt]
    if key not in record:
        return f"missing_field: [{key!r}] (the file's first record is {fmt} format)"
    turns = record[key]
    if not isinstance(turns, list) or not turns:
        return f"not_a_turn_list: {key!r} must be a non-empty list of turns, got {str(turns)[:40]!r}"
    expected, seen = "user", []
    for j, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return f"turn_not_an_object: turn {j} is {type(turn).__name__}"
        written = turn.get(role_key)
        if written not in roles:
            return (
                f"unknown_role: turn {j} has {role_key} {str(written)[:30]!r}; "
                f"{fmt} roles are {', '.join(roles)}"
            )
        content = turn.get(content_key)
        if not isinstance(content, str):
            return (
                f"non_string_content: turn {j} ({written}) has {content_key} of type {type(content).__name__}"
            )
        if not content.strip():
            return f"empty_content: turn {j} ({written}) is empty"
        role = roles[written]
        if role == "system":
            if j != 0:
                return f"misplaced_system: turn {j} is a system turn; only the first turn may be"
            continue
        if role != expected:
            after = seen[-1] if seen else "the start"
            return f"non_alternating: turn {j} is {written!r} after {after!r}; user and assistant turns alternate"
        seen.append(written)
        expected = "assistant" if role == "user" else "user"
    if not any(roles[t[role_key]] == "assistant" for t in turns):
        return "no_assistant_turn: nothing to train on"
    if expected == "assistant":  # the last turn is the user's
        return f"ends_on_user_turn: turn {len(turns) - 1} is the user's; end on an assistant turn"
    return None


def normalise_chat(record: dict, fmt: str) -> dict:
    """A valid chat record as ``{"messages": [{"role", "content"}, ...]}``."""
    key, role_key, content_key, roles = _SHAPES[fmt]
    return {"messages": [{"role": roles[t[role_key]], "content": t[content_key]} for t in record[key]]}


def instruction_messages(record: dict, with_output: bool = True) -> list[dict]:
    """An instruction record as a one-turn chat: the instruction (and its input after a blank line) from
    the user, the output from the assistant (left out for a generation prompt)."""
    user = record["instruction"]
    if record.get("input"):
        user = f"{user}\n\n{record['input']}"
    turns = [{"role": "user", "content": user}]
    if with_output:
        turns.append({"role": "assistant", "content": record["output"]})
    return turns


def prompt_messages(record: dict) -> list[dict]:
    """The turns a model answers: an instruction record's user turn, or a chat record without its last
    assistant turn."""
    if "messages" in record:
        return list(record["messages"][:-1])
    return instruction_messages(record, with_output=False)


def record_question(record) -> str | None:
    """The text splits and contamination checks key a record by: an instruction record's instruction, a
    chat record's first user turn (``messages`` or ShareGPT, normalised or not); None when it has none."""
    if not isinstance(record, dict):
        return None
    for key, role_key, content_key, roles in _SHAPES.values():
        if isinstance(record.get(key), list):
            users = (
                t.get(content_key)
                for t in record[key]
                if isinstance(t, dict) and roles.get(t.get(role_key)) == "user"
            )
            return next((u for u in users if isinstance(u, str)), None)
    question = record.get("instruction")
    return question if isinstance(question, str) else None
