"""Evaluation tasks: a canonical id (any case, aliases) read from LLM-Adapters test files, or a
local LLM-Adapters-format JSON file whose answer kind is inferred from its records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.answers import SCORER_KIND, is_letter
from ..data.catalog import canonical_dataset_id, dataset_entry, load_catalog, mixture_entry
from ..data.heldout_split import parse_split_spec
from ..data.sources import from_file, from_llm_adapters, from_split
from ..data.validate import allowed_labels, is_number, missing_answers
from ..errors import RoCoFTError
from ..io_utils import read_jsonl
from .scoring import COMMONSENSE_PATTERNS


@dataclass
class EvalTask:
    id: str
    family: str  # commonsense | math
    kind: str  # option | number | letter
    pattern: str | None
    records: list[dict]
    source: str
    max_new_tokens: int


def _infer(name: str, records: list[dict], source: str) -> EvalTask:
    missing_answers(records, source)
    answers = [r.get("answer", "") for r in records]
    if all(is_number(a) for a in answers):
        return EvalTask(name, "math", "number", None, records, source, 256)
    if all(is_letter(a) for a in answers):
        return EvalTask(name, "math", "letter", None, records, source, 256)
    labels = []
    for r in records:
        for label in allowed_labels(r, {}) or []:  # the record's own "Answer format:" line
            if label not in labels:
                labels.append(label)
    if not labels or not set(answers) <= set(labels):
        raise RoCoFTError(
            f"{source}: cannot tell how to score it - answers are neither all numbers, all A-E letters, "
            "nor options listed in an 'Answer format: a/b' line. Use a canonical task id instead."
        )
    return EvalTask(
        name, "commonsense", "option", "|".join(sorted(labels, key=len, reverse=True)), records, source, 32
    )


def _catalog_task(task_id: str, records: list[dict], source: str) -> EvalTask:
    """A task scored the way the catalog says for ``task_id``."""
    missing_answers(records, source)
    entry = dataset_entry(task_id)
    kind = SCORER_KIND[entry.answer["type"]]
    return EvalTask(
        task_id, entry.family, kind, COMMONSENSE_PATTERNS.get(task_id), records, source, entry.max_new_tokens
    )


def _test_set_id(name: str) -> str | None:
    task_id = canonical_dataset_id(name)
    return None if task_id is None or mixture_entry(task_id) else task_id


def resolve_tasks(spec: str, llm_adapters_dir: str | None = None) -> list[EvalTask]:
    """One spec -> its tasks: a prepared-data directory (from `rocoft-llm prepare --split test`) gives one
    task per source it holds; anything else is :func:`resolve_task`."""
    path = Path(spec)
    if not (path.is_dir() and (path / "manifest.json").is_file()):
        return [resolve_task(spec, llm_adapters_dir)]
    from ..data.prepare import read_manifest

    manifest = read_manifest(path)
    by_source: dict[str, list[dict]] = {}
    for _, rec in read_jsonl(
        path / "records.jsonl", "prepared records", f"prepare {path} again (--overwrite)"
    ):
        by_source.setdefault(rec.pop("source"), []).append(rec)
    return [
        _catalog_task(_test_set_id(name), records, f"{path} ({name}, {manifest['split']} split)")
        if _test_set_id(name)
        else _infer(name, records, f"{path} ({name})")
        for name, records in by_source.items()
    ]


def scoring_task(spec: str) -> EvalTask:
    """How task ``spec`` is scored, without its records (re-scoring predictions that carry their answers);
    a file path still reads the file, to infer its answer kind."""
    task_id = None if Path(spec).is_file() else _test_set_id(spec)
    return _catalog_task(task_id, [], "predictions") if task_id else resolve_task(spec)


def resolve_task(spec: str, llm_adapters_dir: str | None = None, test_file: str | None = None) -> EvalTask:
    """A task id (boolq, ARC-Easy, gsm8k ...), a split part (boolq:heldout) or the path of an
    LLM-Adapters-format test file.
    With ``test_file``, a task id takes its records from that file (scored as the id says)."""
    if Path(spec).is_file():
        src = from_file(spec)
        task_id = _test_set_id(src.name) if src.dataset_id else None
        if task_id is None:
            return _infer(
                Path(spec).parent.name if Path(spec).stem == "test" else Path(spec).stem, src.records, spec
            )
        return _catalog_task(task_id, src.records, spec)
    if parse_split_spec(spec):  # boolq:heldout - one part of the seeded split of a test file
        src = from_split(spec, llm_adapters_dir)
        task = _catalog_task(src.dataset_id, src.records, f"{next(iter(src.files))} ({src.name})")
        task.id = src.name
        return task
    task_id = _test_set_id(spec)
    if task_id is None:
        raise RoCoFTError(
            f"eval task {spec!r} is not a test set id ({', '.join(load_catalog()[0])}) nor an "
            "existing JSON file."
        )
    if test_file:
        return _catalog_task(task_id, from_file(test_file).records, test_file)
    src = from_llm_adapters(task_id, "test", llm_adapters_dir)
    return _catalog_task(task_id, src.records, next(iter(src.files)))
