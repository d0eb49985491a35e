"""A seeded split of an LLM-Adapters TEST file into a training part and a held-out part.

No commonsense training set is available offline, so ``boolq:train`` (a dataset spec usable in
recipes' ``data.train``, ``prepare --dataset`` and ``eval --tasks``) is one part of the BoolQ test
file and ``boolq:heldout`` the rest; the held-out part never shares a question with the training
part (tested). Works for every catalog test set (``arc_easy:train``, ``piqa:heldout`` ...).

The split is keyed by the item's normalised question (:func:`normalise_question`, the
rule of the contamination report and of held-out evaluation): an item goes to the held-out part
when ``sha256("<seed>|<normalised question>")`` read as a number in [0, 1) is below
``HELDOUT_FRACTION``. So the split does not depend on the file's order, and duplicated questions
always land on the same side. Seed and fraction are fixed (documented here and in the README) so
that every command that names ``boolq:heldout`` means the same items.
"""

from __future__ import annotations

import hashlib
import re

_NON_WORD = re.compile(r"[^\w]+")


def normalise_question(instruction: str) -> str:
    """The question's identity for contamination reports, held-out evaluation and splits: lowercase,
    punctuation and whitespace collapsed, the "Answer format" line removed."""
    text = instruction.split("Answer format:")[0]
    return _NON_WORD.sub(" ", text.lower()).strip()


SPLIT_SEED = 0
HELDOUT_FRACTION = 0.5
PARTS = ("train", "heldout")
_SPEC = re.compile(r"^(?P<dataset>[^:]+):(?P<part>train|heldout)$", re.I)


def parse_split_spec(spec: str) -> tuple[str, str] | None:
    """(dataset, part) for ``"<dataset>:train"`` / ``"<dataset>:heldout"``, else None. A JSON file
    path with a part (``math_data.json:train``) is a file split (:mod:`.file_split`), not this."""
    m = _SPEC.match(spec.strip())
    if not m or m["dataset"].lower().endswith((".json", ".jsonl")):
        return None
    return (m["dataset"], m["part"].lower())


def split_suffix_problem(spec: str, is_dataset_id) -> str | None:
    """For ``<dataset>:<part>`` with a known dataset and an unknown part: the message naming the
    valid suffixes (``is_dataset_id`` tells a dataset id)."""
    dataset, sep, part = spec.strip().rpartition(":")
    if not sep or not dataset or parse_split_spec(spec) or not is_dataset_id(dataset):
        return None
    return (
        f"{spec[:80]!r}: unknown split suffix {':' + part[:40]!r}; a split of {dataset!r} is "
        f"{' or '.join(f'{dataset}:{p}' for p in PARTS)} (valid suffixes: {', '.join(':' + p for p in PARTS)})"
    )


def heldout_score(question: str, seed: int = SPLIT_SEED) -> float:
    """The item's position in [0, 1) for the split: a hash of the seed and the normalised question."""
    digest = hashlib.sha256(f"{seed}|{normalise_question(question)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_heldout(record: dict, seed: int = SPLIT_SEED, fraction: float = HELDOUT_FRACTION) -> bool:
    return heldout_score(record["instruction"], seed) < fraction


def split_records(
    records: list[dict], part: str, seed: int = SPLIT_SEED, fraction: float = HELDOUT_FRACTION
) -> list[dict]:
    """The records of ``part`` ("train" or "heldout"), in their original order."""
    if part not in PARTS:
        raise ValueError(f"part {part!r} is not one of {PARTS}")
    want_heldout = part == "heldout"
    return [r for r in records if in_heldout(r, seed, fraction) == want_heldout]


def split_name(dataset_id: str, part: str) -> str:
    """The canonical name of a split part, e.g. ``boolq:heldout``."""
    return f"{dataset_id}:{part}"


def split_fingerprint(seed: int = SPLIT_SEED, fraction: float = HELDOUT_FRACTION) -> str:
    """What a cache key needs to know about the split rule."""
    return f"heldout-split v1 seed={seed} fraction={fraction}"
