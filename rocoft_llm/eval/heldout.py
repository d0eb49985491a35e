"""Held-out evaluation: never score a test item whose question the run trained on.

An item is "seen in training" when its normalised question (:func:`~..data.heldout_split.normalise_question`,
the contamination report's rule) equals a training record's. For ``eval --run`` the training
questions are rebuilt from the run's recipe (``data.train``, read exactly as ``prepare`` read it; the
file hashes must match the run's data manifest). The mode per task:

* ``held-out`` (the default whenever the run's training questions, compared with the task's items
  at eval time, share any, or the data manifest recorded an exact overlap with that test set): seen
  items are excluded, and the summary states scored / excluded counts;
* ``all`` (``--score-all``, or no item seen in training): every item is scored; the summary says
  how many of them were seen in training when that is known.

The comparison is made at eval time for every task, whatever the manifest's contamination report
checked (it checks only the test sets found under ``data.llm_adapters_dir`` when the data was
prepared, often none). When the training data cannot be read now and the manifest recorded no
overlap, every item is scored and the summary says plainly that nothing was checked.

Every summary states which was done (``evaluation_mode``, ``scored``, ``excluded_seen_in_training``,
``seen_in_training``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..data.chat import record_question
from ..data.heldout_split import normalise_question, parse_split_spec
from ..errors import RoCoFTError, bounded
from ..io_utils import read_json

log = logging.getLogger("rocoft_llm")


@dataclass
class HeldoutPolicy:
    """What the evaluator knows about the training data. ``seen`` is None when unknown."""

    score_all: bool = False
    seen: set[str] | None = None
    overlapping: set[str] = field(default_factory=set)  # test set ids the manifest reports an overlap with
    origin: str = "no training run given"
    #: why ``seen`` is None although a run was given (the training data cannot be read now)
    unchecked: str | None = None


def base_test_id(task_id: str) -> str:
    """``boolq:heldout`` -> ``boolq`` (the test set a manifest's overlap counts refer to)."""
    split = parse_split_spec(task_id)
    return split[0] if split else task_id


def manifest_overlaps(manifest: dict) -> set[str]:
    """Test set ids that any training source shares exact questions with."""
    overlaps = manifest.get("contamination", {}).get("exact_overlap", {})
    return {task for per_source in overlaps.values() for task, count in per_source.items() if count}


def training_questions(recipe: dict, manifest: dict) -> set[str]:
    """Normalised questions of the run's training sources, read as ``prepare`` read them."""
    from ..data.sources import resolve_source

    data = recipe.get("data", {})
    recorded = {path: sha for s in manifest.get("sources", []) for path, sha in s.get("files", {}).items()}
    seen = set()
    for spec in data.get("train", []):
        try:
            src = resolve_source(
                spec,
                "train",
                data.get("source", "llm_adapters"),
                data.get("llm_adapters_dir"),
                data.get("hub_dir"),
            )
        except RoCoFTError as e:
            raise RoCoFTError(
                f"held-out evaluation needs the run's training data to know which test items it saw, "
                f"but {spec!r} cannot be read now ({e}). Restore it, or pass --score-all to score every "
                "item (the summary then says how many were seen in training is unknown)."
            ) from None
        changed = [p for p, sha in src.files.items() if p in recorded and recorded[p] != sha]
        if changed:
            raise RoCoFTError(
                f"held-out evaluation: {changed} changed since the run trained on it (sha256 differs from "
                "its data_manifest.json); restore the original file or pass --score-all."
            )
        # the key splits and contamination reports use: an instruction, or a chat record's first user turn
        seen.update(normalise_question(q) for q in map(record_question, src.records) if q)
    return seen


def policy_for_run(run_dir: str | None, score_all: bool) -> HeldoutPolicy:
    """The held-out policy for ``eval --run RUN`` (or no run: nothing is known, everything scored)."""
    if not run_dir:
        return HeldoutPolicy(score_all=score_all)
    from .identity import run_recipe

    run = Path(run_dir)
    path = run / "data_manifest.json"
    if not path.is_file():
        return HeldoutPolicy(score_all=score_all, origin=f"{run} has no data_manifest.json")
    manifest = read_json(path, "data manifest", "rerun the training or remove it")
    overlapping = manifest_overlaps(manifest)
    origin = f"training data of {run}"
    try:  # always: the manifest's report covers only the test sets present when the data was prepared
        seen = training_questions(run_recipe(run), manifest)
    except RoCoFTError as e:
        if not score_all and overlapping:
            raise
        log.warning("held-out check not made: %s", e)
        return HeldoutPolicy(
            score_all=score_all,
            overlapping=overlapping,
            origin=origin,
            unchecked=f"not checked: the run's training data cannot be read now ({bounded(str(e), 300)})",
        )
    return HeldoutPolicy(score_all=score_all, seen=seen, overlapping=overlapping, origin=origin)


def select_items(task, policy: HeldoutPolicy) -> tuple[list[int], dict]:
    """(indices of ``task.records`` to score, summary fields saying what was scored and why)."""
    everything = list(range(len(task.records)))
    if policy.seen is None:
        return everything, {
            "evaluation_mode": "all",
            "excluded_seen_in_training": 0,
            "seen_in_training": None,
            "evaluation_mode_reason": policy.unchecked or f"training data unknown ({policy.origin})",
        }
    seen = [i for i in everything if normalise_question(task.records[i]["instruction"]) in policy.seen]
    overlap = bool(seen) or base_test_id(task.id) in policy.overlapping
    if policy.score_all or not overlap:
        reason = (
            "--score-all"
            if policy.score_all
            else f"no overlap with the {policy.origin} ({len(policy.seen)} training questions compared "
            f"with the {len(everything)} items at eval time)"
        )
        return everything, {
            "evaluation_mode": "all",
            "excluded_seen_in_training": 0,
            "seen_in_training": len(seen),
            "evaluation_mode_reason": reason,
        }
    seen_set = set(seen)
    return [i for i in everything if i not in seen_set], {
        "evaluation_mode": "held-out",
        "excluded_seen_in_training": len(seen),
        "seen_in_training": len(seen),
        "evaluation_mode_reason": f"the {policy.origin} shares {len(seen)} questions with "
        f"{base_test_id(task.id)}; --score-all scores every item",
    }
