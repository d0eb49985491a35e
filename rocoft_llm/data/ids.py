"""Canonical dataset ids and their aliases, matched case-insensitively (data and eval share them)."""

from __future__ import annotations

COMMONSENSE = ("boolq", "piqa", "siqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa")
MATH = ("gsm8k", "svamp", "aqua", "multiarith", "addsub", "singleeq", "mawps")
MIXTURES = ("commonsense", "math", "math_gold")

ALIASES = {
    "social_i_qa": "siqa",
    "arc-easy": "arc_easy",
    "arc-challenge": "arc_challenge",
    "arc-e": "arc_easy",
    "arc-c": "arc_challenge",
    "obqa": "openbookqa",
    "commonsense_170k": "commonsense",
    "math_10k": "math",
}


def canonical_dataset_id(name: str) -> str | None:
    """The canonical id for a dataset name or alias (any case), or None if it is not one."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in COMMONSENSE + MATH + MIXTURES else None


def all_dataset_ids() -> list[str]:
    return list(COMMONSENSE + MATH + MIXTURES)
