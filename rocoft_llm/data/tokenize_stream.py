"""Tokenizing records as a stream: rows go in batches through :func:`.tokenize.encode_batch` and out
to an Arrow file as they come, with the statistics counted on the way, so memory holds a few
batches whatever the number of records (``datasets.map`` over an in-memory dataset held every row
and every token: 2 GB for a 100 MB file).

The output directory has the layout of ``datasets.Dataset.save_to_disk`` (one
``data-00000-of-00001.arrow`` shard, ``state.json``, ``dataset_info.json``) and is read back with
``datasets.load_from_disk``. It is written here rather than by ``save_to_disk``, which reads its
source through a memory map: every page of a large dataset it touches counts as resident memory.

Over-length records (``overlength``: error, drop, truncate) and chat examples the cutoff left
without an assistant token are handled batch by batch, as ``Dataset.filter`` did after the map.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from multiprocessing import get_context
from pathlib import Path

from ..errors import RoCoFTError
from .chat_template import IGNORE_INDEX

BATCH = 1000
SHARD = "data-00000-of-00001.arrow"


def features(with_source: bool):
    """The columns of a tokenized dataset, typed as ``datasets.map`` typed them (``input_ids``: int32)."""
    import datasets

    seq = getattr(datasets, "List", None) or datasets.Sequence  # datasets < 4 has Sequence only
    ints = seq(datasets.Value("int64"))
    return datasets.Features(
        {
            **({"source": datasets.Value("string")} if with_source else {}),
            "input_ids": seq(datasets.Value("int32")),
            "labels": ints,
            "length": datasets.Value("int64"),
            "overlength": datasets.Value("bool"),
            "prompt_tokens": datasets.Value("int64"),
        }
    )


def _batches(rows: Iterable[dict]) -> Iterator[tuple[int, dict]]:
    """(index of the first row, the rows as columns) for every :data:`BATCH` rows."""
    rows, start = iter(rows), 0
    while chunk := list(islice(rows, BATCH)):
        yield start, {k: [r.get(k, "") for r in chunk] for k in chunk[0]}
        start += len(chunk)


_WORKER: dict = {}


def _init_worker(options: dict) -> None:
    _WORKER.update(options)


def _encode(job: tuple[int, dict]) -> tuple[dict, dict]:
    start, batch = job
    options = dict(_WORKER)
    encode = options.pop("encode")
    return batch, encode(batch, indices=range(start, start + len(batch["instruction"])), **options)


def encoded(rows: Iterable[dict], options: dict, num_proc: int = 1) -> Iterator[tuple[dict, dict]]:
    """(batch of rows, ``options["encode"]`` of it: :func:`.tokenize.encode_batch` with the other
    options as keyword arguments) in order; ``num_proc`` > 1 encodes in that many forked processes
    with at most two batches each in flight (the input is read as it is used)."""
    jobs = _batches(rows)
    if num_proc <= 1:
        _WORKER.update(options)
        try:
            yield from map(_encode, jobs)
        finally:
            _WORKER.clear()
        return
    with ProcessPoolExecutor(num_proc, get_context("fork"), _init_worker, (options,)) as pool:
        pending = [pool.submit(_encode, job) for job in islice(jobs, 2 * num_proc)]
        while pending:
            result = pending.pop(0).result()
            pending.extend(pool.submit(_encode, job) for job in islice(jobs, 1))
            yield result


class TokenStats:
    """The statistics of the written examples, and the over-length / prompt-only policy per batch.
    Lengths are kept as a histogram (at most ``cutoff_len + 1`` values)."""

    def __init__(self, cutoff_len: int, overlength: str, chat: bool):
        self.cutoff_len, self.policy, self.chat = cutoff_len, overlength, chat
        self.lengths, self.over, self.first_over = Counter(), 0, []
        self.no_answer, self.trained = 0, 0

    def keep(self, start: int, out: dict, source: list | None) -> dict:
        """The columns of the examples of one encoded batch that are written."""
        keep = []
        for k, over in enumerate(out["overlength"]):
            if over:
                self.over += 1
                if len(self.first_over) < 5:
                    self.first_over.append(start + k)
            dropped = over and self.policy == "drop"
            prompt_only = not dropped and self.chat and out["assistant_tokens"][k] == 0
            self.no_answer += prompt_only
            if not (dropped or prompt_only):
                keep.append(k)
        columns = {
            name: [values[k] for k in keep] for name, values in out.items() if name != "assistant_tokens"
        }
        if source is not None:
            columns = {"source": [source[k] for k in keep], **columns}
        self.lengths.update(columns["length"])
        self.trained += sum(len(ls) - ls.count(IGNORE_INDEX) for ls in columns["labels"])
        return columns

    def finish(self) -> dict:
        if self.over and self.policy == "error":
            raise RoCoFTError(
                f"{self.over} record(s) are longer than cutoff_len {self.cutoff_len} tokens (first indices "
                f"{self.first_over}); raise data.cutoff_len, or set data.overlength to truncate or drop."
            )
        n = sum(self.lengths.values())
        return {
            "examples": n,
            "overlength": {
                "policy": self.policy,
                "count": self.over,
                "truncated": self.over - self.no_answer if self.policy == "truncate" else 0,
                "dropped": self.over if self.policy == "drop" else 0,
                **({"dropped_prompt_only": self.no_answer} if self.chat else {}),
            },
            "token_lengths": self._summary(n) if n else {},
            "trained_tokens": self.trained,
        }

    def _summary(self, n: int) -> dict:
        """min, mean, median, p95, max, total: what ``statistics`` gave on the list of lengths."""
        ordered = sorted(self.lengths.items())

        def nth(i: int) -> int:  # the i-th smallest length
            for value, count in ordered:
                if i < count:
                    return value
                i -= count
            raise IndexError(i)

        total = sum(v * c for v, c in ordered)
        median = nth(n // 2) if n % 2 else (nth(n // 2 - 1) + nth(n // 2)) / 2
        return {
            "min": ordered[0][0],
            "mean": round(total / n, 2),
            "median": median,
            "p95": nth(int(0.95 * (n - 1))),
            "max": ordered[-1][0],
            "total": total,
        }


def tokenized_batches(
    rows: Iterable[dict], options: dict, overlength: str, num_proc: int, stats: TokenStats
) -> Iterator[dict]:
    """The columns of every batch of examples to write (over-length and prompt-only policy applied)."""
    start = 0
    for batch, out in encoded(rows, options, num_proc):
        yield stats.keep(start, out, batch.get("source"))
        start += len(batch["instruction"])


def write_tokenized(
    rows: Iterable[dict],
    directory: Path,
    options: dict,
    overlength: str,
    num_proc: int,
    with_source: bool,
    progress: bool = True,
) -> dict:
    """Tokenize ``rows`` (:func:`.tokenize.as_rows` dicts) into the dataset directory ``directory``;
    returns the statistics. ``options``: :func:`.tokenize.encode_options`."""
    from datasets import DatasetInfo
    from datasets.arrow_writer import ArrowWriter

    feats = features(with_source)
    stats = TokenStats(options["cutoff_len"], overlength, options["template"].is_chat)
    directory.mkdir(parents=True)
    writer = ArrowWriter(features=feats, path=str(directory / SHARD), writer_batch_size=BATCH)
    try:
        for columns in _progress(tokenized_batches(rows, options, overlength, num_proc, stats), progress):
            writer.write_batch(columns)
        writer.finalize()
    finally:
        writer.close()
    result = stats.finish()
    state = {
        "_data_files": [{"filename": SHARD}],
        "_fingerprint": "rocoft-llm-prepare",
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    (directory / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    DatasetInfo(features=feats).write_to_directory(str(directory))
    return result


def _progress(batches: Iterator[dict], progress: bool) -> Iterator[dict]:
    if not progress:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=f"tokenizing ({BATCH} records a step)", unit="batch")
