"""`prepare` as a stream: the data file is parsed one record at a time (the same values and the
same error places as whole-file JSON), the tokens go to disk as they come (the same dataset and
statistics as the in-memory ``datasets.map`` it replaced), memory does not grow with the file, and
the lock file never stays behind."""

import json
import random
import statistics
import threading
import tracemalloc

import pytest

import rocoft_llm.data.json_stream as json_stream
import rocoft_llm.data.tokenize_stream as tokenize_stream
from rocoft_llm.data.prepare import PrepareOptions, prepare
from rocoft_llm.data.records import iter_records, read_json_array
from rocoft_llm.data.templates import get_template
from rocoft_llm.data.tokenize import IGNORE_INDEX, as_rows, encode_batch, encode_options
from rocoft_llm.errors import InputError, RoCoFTError
from rocoft_llm.locks import held_lock
from tests.helpers.paths import TINY


def _record(rng, i):
    return {
        "instruction": "é" * rng.randint(0, 40) + f"question {i}",
        "input": "" if i % 3 else "some input",
        "output": "word " * rng.randint(0, 120),
        "answer": str(i),
        "n": rng.randint(-(10**15), 10**15),
        "x": [1.5e300, None, True, {"deep": ["ü", -0.25]}],
    }


@pytest.mark.parametrize("chunk", [7, 64, 4096])
@pytest.mark.parametrize("indent", [None, 4])
def test_the_array_reader_reads_what_json_reads_across_buffer_ends(tmp_path, monkeypatch, chunk, indent):
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    rng = random.Random(chunk)
    values = [_record(rng, i) for i in range(40)] + [12345678901234567890, 3.25, "text", []]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(values, indent=indent, ensure_ascii=False))
    assert read_json_array(path) == values
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a byte-order mark
    assert read_json_array(path) == values


BROKEN = [
    '[\n{"instruction": "x",\n]',
    '[{"a": 1}, {"a": tru}]',
    "[1,\n 2\n 3]",
    '[{"a": "b"},\n\n  {"a" "c"}]',
    "[1, 2] tail",
    '[{"a": "' + "x" * 300 + '", "b": }]',
]


@pytest.mark.parametrize("text", BROKEN)
def test_a_syntax_error_is_placed_where_json_places_it(tmp_path, monkeypatch, text):
    monkeypatch.setattr(json_stream, "CHUNK", 16)  # the error lies beyond many buffer refills
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    with pytest.raises(InputError) as got:
        read_json_array(path)
    assert got.value.where == f"line {want.value.lineno}"
    assert f"at column {want.value.colno}," in got.value.problem


def test_records_are_read_one_at_a_time(tmp_path, monkeypatch):
    """The records before a broken one arrive before the break is read; reading a 5 MB file holds a
    fraction of what parsing it whole holds."""
    monkeypatch.setattr(json_stream, "CHUNK", 1 << 16)
    rng = random.Random(0)
    records = [_record(rng, i) for i in range(8000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(records, indent=4))
    text = path.read_text()
    cut = text.index("},", len(text) // 2) + 2  # between two records
    (tmp_path / "broken.json").write_text(text[:cut] + "@" + text[cut:])
    stream = iter_records(tmp_path / "broken.json")
    first = [next(stream) for _ in range(100)]
    assert first == records[:100]
    with pytest.raises(InputError, match="not valid JSON"):
        list(stream)

    def peak(fn) -> int:
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole = peak(lambda: json.loads(path.read_text()))
    streamed = peak(lambda: sum(1 for _ in iter_records(path)))
    assert streamed < whole / 10, (streamed, whole)


def _reference(rows, options, overlength):
    """What `prepare` computed before it streamed: ``datasets.map`` over an in-memory dataset, then
    ``filter`` for dropped rows, statistics from the whole lengths column."""
    import datasets

    ds = datasets.Dataset.from_list(rows)
    options = {k: v for k, v in options.items() if k != "encode"}
    mapped = ds.map(
        lambda b, i: encode_batch(b, indices=i, **options),
        batched=True,
        with_indices=True,
        batch_size=7,
        remove_columns=[c for c in ds.column_names if c != "source"],
    )
    if overlength == "drop":
        mapped = mapped.filter(lambda o: not o, input_columns=["overlength"])
    lengths = mapped["length"]
    stats = {
        "min": min(lengths),
        "mean": round(statistics.fmean(lengths), 2),
        "median": statistics.median(lengths),
        "p95": sorted(lengths)[int(0.95 * (len(lengths) - 1))],
        "max": max(lengths),
        "total": sum(lengths),
    }
    trained = sum(len(ls) - ls.count(IGNORE_INDEX) for ls in mapped["labels"])
    return mapped, stats, trained


@pytest.mark.parametrize("overlength,num_proc", [("truncate", 1), ("drop", 1), ("drop", 2)])
def test_written_dataset_equals_the_in_memory_map(tmp_path, monkeypatch, overlength, num_proc):
    import datasets

    from rocoft_llm.model_loading import load_tokenizer

    monkeypatch.setattr(tokenize_stream, "BATCH", 7)  # many batches, a ragged last one
    tokenizer = load_tokenizer(str(TINY / "llama"))
    rng = random.Random(1)
    records = [
        {
            "instruction": f"q{i}",
            "input": "in" * (i % 2),
            "output": "a b " * rng.randint(0, 50),
            "source": f"s{i % 2}",
        }
        for i in range(45)
    ]
    rows = as_rows(records)
    options = encode_options(tokenizer, get_template("llm_adapters"), 200, False, True)
    want, want_lengths, want_trained = _reference(rows, options, overlength)
    stats = tokenize_stream.write_tokenized(
        rows, tmp_path / "tok", options, overlength, num_proc, True, False
    )
    got = datasets.load_from_disk(str(tmp_path / "tok"))
    assert got.features == want.features and got.column_names == want.column_names
    assert got.to_list() == want.to_list()
    assert stats["token_lengths"] == want_lengths and stats["trained_tokens"] == want_trained
    assert stats["examples"] == len(want) and 0 < stats["overlength"]["count"] < len(rows)


def test_prepare_memory_does_not_grow_with_the_file(tmp_path, monkeypatch):
    """Python objects `prepare` holds at its peak: the same for a file 4x larger, and a fraction of
    what the parsed file alone holds."""
    from rocoft_llm.model_loading import load_tokenizer

    monkeypatch.setattr(json_stream, "CHUNK", 1 << 16)
    monkeypatch.setattr(tokenize_stream, "BATCH", 50)
    tokenizer = load_tokenizer(str(TINY / "llama"))
    rng = random.Random(2)

    def peak(count: int) -> tuple[int, int]:
        path = tmp_path / f"data{count}.json"
        path.write_text(json.dumps([_record(rng, i) for i in range(count)], indent=4))
        options = PrepareOptions(datasets=[str(path)], tokenizer_path=str(TINY / "llama"), cutoff_len=32)
        tracemalloc.start()
        try:
            json.loads(path.read_text())
            whole = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            prepare(options, tmp_path / f"out{count}", tokenizer=tokenizer, progress=False)
            return tracemalloc.get_traced_memory()[1], whole
        finally:
            tracemalloc.stop()

    peak(50)  # imports and caches, once
    small, _ = peak(1000)  # over 1 MB: the file hash reads 1 MB blocks
    large, whole = peak(4000)
    assert large < 1.3 * small and large < whole / 3, (small, large, whole)


def test_a_failed_prepare_leaves_no_lock_file(tmp_path):
    data = tmp_path / "long.json"
    data.write_text(json.dumps([{"instruction": "q", "output": "word " * 200}]))
    options = PrepareOptions(
        datasets=[str(data)], tokenizer_path=str(TINY / "llama"), cutoff_len=16, overlength="error"
    )
    with pytest.raises(RoCoFTError, match="longer than cutoff_len 16"):  # raised while the lock is held
        prepare(options, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.json"]


def test_the_lock_file_goes_and_a_waiter_locks_a_fresh_one(tmp_path):
    """The holder removes the lock file before releasing it; a process waiting on the removed file
    must then hold the lock on the file at the path, which a third process cannot take."""
    path = tmp_path / ".out.lock"
    holding, order = threading.Event(), []

    def waiter():
        holding.wait()
        with held_lock(path, timeout=30):
            order.append(("waiter", path.exists()))
            with pytest.raises(RoCoFTError, match="still held by another process"):
                with held_lock(path, timeout=0.2):
                    pass
            order.append(("third refused", True))

    thread = threading.Thread(target=waiter)
    thread.start()
    with held_lock(path):
        holding.set()
        threading.Event().wait(0.5)  # the waiter is now blocked on this file
        order.append(("holder", path.exists()))
    thread.join(timeout=60)
    assert order == [("holder", True), ("waiter", True), ("third refused", True)]
    assert not path.exists()
