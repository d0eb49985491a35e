"""The two passes of ``prepare`` over its sources. File sources are read as a stream
(:class:`.records.RecordFile`), so neither pass holds the records: a pass holds one record, the
counts, and the matches with the test sets.

1. :func:`check_sources`: every record validated (a source's problems reported together), the
   per-source manifest entry (counts, drops, format, ignored fields, the math quirk), the
   contamination overlaps and the template's input check: all before the lock is taken and
   before anything is written;
2. :func:`kept_records`: the kept records again, in order, each with its source, for
   ``records.jsonl`` and the tokenizer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from ..errors import RoCoFTError
from .answers import MATH_ANSWER_TYPES
from .reports import OverlapCounter, QuirkCounter
from .templates import format_problem, input_problem
from .validate import RecordChecker, kept_stream

log = logging.getLogger("rocoft_llm")


def source_place(src) -> str:
    """How messages name a source: its files, else its name."""
    return ", ".join(src.files) or src.name


def _kept(src, opts) -> Iterator[dict]:
    """The kept (validated, normalised) records of one source, in order (a file changed since the
    first pass is refused at its end)."""
    return kept_stream(src.records, src.answer_spec, source_place(src), opts.bad_records, opts.format)


def kept_records(sources: list, opts) -> Iterator[dict]:
    """Pass 2: the kept records of every source, in order, each with its ``source``."""
    for src in sources:
        for record in _kept(src, opts):
            yield {**record, "source": src.name}


def check_sources(sources: list, opts, template, tests: dict[str, set[str]]) -> tuple[list[dict], dict]:
    """Pass 1: (per-source manifest entries, exact overlaps with ``tests`` per source name)."""
    source_info, overlaps, kept_total = [], {}, 0
    for src in sources:
        where = source_place(src)
        checker = RecordChecker(src.answer_spec, where, opts.bad_records, opts.format)
        overlap, quirk = OverlapCounter(tests), QuirkCounter()
        math = src.answer_spec.get("type") in MATH_ANSWER_TYPES
        count = kept_count = 0
        for i, record in enumerate(src.records):
            count += 1
            kept = checker.check(i, record)
            if kept is None:
                continue
            kept_count += 1
            overlap.add(kept)
            if math:
                quirk.add(kept)
        if not count:
            raise RoCoFTError(
                f"{where}: the source holds no records (an empty JSON array); add records or remove it "
                "from --dataset / data.train."
            )
        drops = checker.finish()
        problem = format_problem(drops.format, template, where)
        if problem:
            raise RoCoFTError(problem + ".")
        if drops.ignored:
            log.warning(
                "%s: field(s) %s are not part of the %s format and were left out of the text",
                where,
                ", ".join(f"{k!r} ({n} records)" for k, n in sorted(drops.ignored.items())),
                drops.format,
            )
        source_info.append(
            {
                "name": src.name,
                "kind": src.kind,
                "files": src.files,
                "members": src.members,
                "records": count,
                "kept": kept_count,
                "drops": dict(drops),
                "format": drops.format,
                "ignored_fields": dict(drops.ignored),
                "math_quirk": quirk.report() if math else None,
            }
        )
        overlaps[src.name] = overlap.counts()
        kept_total += kept_count
    if not kept_total:
        raise RoCoFTError(
            f"no records left to prepare: every record of {', '.join(s.name for s in sources)} was bad "
            "and dropped (--bad-records drop); fix the files."
        )
    if not template.takes_input:  # a third read, only for a custom template without {input}
        for src in sources:
            problem = input_problem(_kept(src, opts), template, source_place(src))
            if problem:
                raise RoCoFTError(problem)
    return source_info, overlaps
