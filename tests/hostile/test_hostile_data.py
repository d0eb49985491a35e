"""Hostile data files through `validate`, `prepare --dataset` and `prepare --recipe`: refused with exit 2,
a message naming the file, the record or line and the fix; nothing written (no output, no lock file)."""

import json
import re

import pytest
import yaml

from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.paths import TINY

TOKENIZER = TINY / "llama"
GOOD = [
    {
        "instruction": f"What is {i} + 1?",
        "input": "",
        "output": f"The answer is {i + 1}",
        "answer": str(i + 1),
    }
    for i in range(8)
]


def records(*extra):
    return json.dumps(GOOD + list(extra)).encode()


DROP = "--bad-records drop"
CASES = {
    # name: (file bytes, message parts every command must show)
    "not UTF-8": (b'[{"instruction": "caf\xe9"}]', ["line 1", "not UTF-8", "convert it to UTF-8"]),
    "invalid JSON": (b'[\n{"instruction": "x",\n]', ["line 3", "is not valid JSON"]),
    "empty file": (b"", ["is empty, not JSON"]),
    "empty array": (b"[]", ["holds no records", "add records"]),
    "an object, not an array": (
        b'{"instruction": "x"}',
        ["expected a JSON array of records (or JSON lines, one record per line), got dict"],
    ),
    "a record that is not an object": (records("just text"), ["record 8: not_an_object", DROP]),
    "a record missing fields": (records({"instruction": "x"}), ["record 8: missing_field", DROP]),
    "a record with a non-string input": (
        records({**GOOD[0], "input": ["x"]}),
        ["record 8: non_string_input: ['x']", DROP],
    ),
    "a numeric answer": (records({**GOOD[0], "answer": 1}), ["record 8: non_string_answer: 1", DROP]),
    "an empty instruction": (records({**GOOD[0], "instruction": "  "}), ["record 8: empty_instruction"]),
    "a record repeating a key": (
        records()[:-1] + b', {"instruction": "x", "input": "", "output": "1", "answer": "1", "answer": "2"}]',
        ["record 8 repeats the key(s) 'answer'", "JSON would silently keep only the last value", "keep one"],
    ),
    "a record nested 100,000 levels deep": (
        records()[:-1] + b', {"instruction": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}]",
        ["data file is nested too deeply to read"],
    ),
    "a JSON line nested 100,000 levels deep": (
        b"".join(json.dumps(r).encode() + b"\n" for r in GOOD) + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        ["line 9", "a record nested too deeply to read"],
    ),
    "JSON lines with a broken line": (
        b"".join(json.dumps(r).encode() + b"\n" for r in GOOD) + b'{"instruction": "x",\n',
        ["line 9", "not valid JSON lines", "one record per line"],
    ),
}


def write_recipe(tmp_path, data_file, **data):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model": {"name_or_path": str(TOKENIZER), "random_init": True, "dtype": "float32"},
                "data": {
                    "train": [str(data_file)],
                    "cutoff_len": 64,
                    "cache_dir": str(tmp_path / "cache"),
                    **data,
                },
                "train": {"global_batch_size": 4, "micro_batch_size": 4, "max_steps": 2, "precision": "fp32"},
                "output": {"dir": str(tmp_path / "run")},
            }
        )
    )
    return recipe


COMMANDS = {
    "validate": lambda tmp, f: ["validate", write_recipe(tmp, f)],
    "prepare --dataset": lambda tmp, f: [
        "prepare",
        "--dataset",
        f,
        "--tokenizer",
        TOKENIZER,
        "--out",
        tmp / "out",
    ],
    "prepare --recipe": lambda tmp, f: ["prepare", "--recipe", write_recipe(tmp, f), "--out", tmp / "out"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_file_is_refused(tmp_path, case, command):
    content, needles = CASES[case]
    data_file = tmp_path / "train.json"
    data_file.write_bytes(content)
    args = COMMANDS[command](tmp_path, data_file)
    before = snapshot(tmp_path)
    assert_refused(run_cli(*args), str(data_file), *needles)
    assert snapshot(tmp_path) == before  # no output, no cache, no lock file, the data file untouched


def test_dropping_every_record_is_refused(tmp_path):
    data_file = tmp_path / "train.json"
    data_file.write_text(json.dumps([{"instruction": "x"}, "text"]))
    result = run_cli(
        "prepare",
        "--dataset",
        data_file,
        "--tokenizer",
        TOKENIZER,
        "--out",
        tmp_path / "out",
        "--bad-records",
        "drop",
    )
    assert_refused(result, "no records left to prepare", "fix the files")
    assert not (tmp_path / "out").exists()


def test_input_text_is_never_dropped(tmp_path):
    data_file = tmp_path / "train.json"
    data_file.write_text(json.dumps(GOOD + [{**GOOD[0], "input": "Use base 10."}]))
    custom = "Q: {instruction}\nA: {output}"
    result = run_cli(
        "prepare",
        "--dataset",
        data_file,
        "--tokenizer",
        TOKENIZER,
        "--out",
        tmp_path / "out",
        "--template",
        custom,
    )
    assert_refused(result, str(data_file), "1 record(s) have a non-empty 'input'", "record 8", "add {input}")
    assert_refused(run_cli("validate", write_recipe(tmp_path, data_file, template=custom)), "record 8")
    assert not (tmp_path / "out").exists()
    ok = run_cli(
        "prepare",
        "--dataset",
        data_file,
        "--tokenizer",
        TOKENIZER,
        "--out",
        tmp_path / "out",
        "--preview",
        "9",
    )
    assert ok.exit_code == 0 and "### Input:" in ok.output and "Use base 10." in ok.output


def test_prepare_recipe_applies_command_line_options(tmp_path):
    """--bad-records drop on top of --recipe is applied (it was silently ignored), and prepare does not run
    the training-only warmup check."""
    data_file = tmp_path / "train.json"
    data_file.write_text(json.dumps(GOOD + [{"instruction": "x"}]))
    recipe = write_recipe(tmp_path, data_file)
    assert_refused(run_cli("prepare", "--recipe", recipe, "--out", tmp_path / "out"), "--bad-records drop")
    result = run_cli(
        "prepare",
        "--recipe",
        recipe,
        "--bad-records",
        "drop",
        "--cutoff-len",
        "48",
        "--out",
        tmp_path / "out",
        "train.warmup_steps=50",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["bad_records"] == "drop" and manifest["cutoff_len"] == 48 and manifest["examples"] == 8
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob(".*.lock"))  # no lock left behind
    bad = run_cli("prepare", "--recipe", recipe, "--overlength", "cut", "--out", tmp_path / "o2")
    assert bad.exit_code == 2 and "'cut' is not one of" in bad.output


def test_cache_key_covers_the_contamination_test_sets(tmp_path):
    data_file = tmp_path / "train.json"
    data_file.write_text(json.dumps(GOOD))
    tests = tmp_path / "tests"
    (tests / "AddSub").mkdir(parents=True)
    (tests / "AddSub" / "test.json").write_text(json.dumps(GOOD[:2]))

    def run(*extra):
        result = run_cli(
            "prepare", "--dataset", data_file, "--tokenizer", TOKENIZER, "--cutoff-len", "64", *extra
        )
        assert result.exit_code == 0, result.output
        return re.search(r"prepared data: (\S+)", result.output).group(1)

    env_cache = {"ROCOFT_CACHE": str(tmp_path / "cache")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env_cache.items():
            mp.setenv(k, v)
        mp.delenv("ROCOFT_LLM_ADAPTERS_DIR", raising=False)
        plain = run()
        with_tests = run("--test-dir", tests)
        (tests / "AddSub" / "test.json").write_text(json.dumps(GOOD[:3]))
        changed_tests = run("--test-dir", tests)
    assert len({plain, with_tests, changed_tests}) == 3  # a cache hit never reuses another test set's report


def prepared_ids(result, tmp_path, name):
    assert result.exit_code == 0, result.output
    import datasets

    return datasets.load_from_disk(str(tmp_path / name / "tokenized"))["input_ids"]


@pytest.mark.parametrize(
    "form,content",
    [
        ("UTF-8 with a byte-order mark", b"\xef\xbb\xbf" + json.dumps(GOOD).encode()),
        ("JSON lines", b"".join(json.dumps(r).encode() + b"\n" for r in GOOD)),
        (
            "JSON lines with a BOM and CRLF",
            b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\r\n" for r in GOOD),
        ),
    ],
)
def test_other_json_forms_prepare_the_same_examples(tmp_path, form, content):
    (tmp_path / "array.json").write_text(json.dumps(GOOD))
    (tmp_path / "other.json").write_bytes(content)
    args = ["--tokenizer", TOKENIZER, "--cutoff-len", "64"]
    want = prepared_ids(
        run_cli("prepare", "--dataset", tmp_path / "array.json", *args, "--out", tmp_path / "a"),
        tmp_path,
        "a",
    )
    got = prepared_ids(
        run_cli("prepare", "--dataset", tmp_path / "other.json", *args, "--out", tmp_path / "b"),
        tmp_path,
        "b",
    )
    assert got == want and len(got) == len(GOOD)
    assert run_cli("validate", write_recipe(tmp_path, tmp_path / "other.json")).exit_code == 0


def test_a_directory_as_data_path_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.json").write_text(json.dumps(GOOD))
    recipe = write_recipe(tmp_path, tmp_path / "data")
    before = snapshot(tmp_path)
    for strict in ([], ["--strict"]):
        assert_refused(
            run_cli("validate", recipe, *strict), "data.train:", "is a directory; list the JSON file"
        )
    assert_refused(
        run_cli(
            "prepare", "--dataset", tmp_path / "data", "--tokenizer", TOKENIZER, "--out", tmp_path / "out"
        ),
        "is a directory; pass the JSON file(s) inside it",
    )
    assert_refused(run_cli("prepare", "--recipe", recipe, "--out", tmp_path / "out"), "is a directory")
    assert snapshot(tmp_path) == before


def test_an_unknown_split_suffix_lists_the_valid_suffixes(tmp_path):
    recipe = write_recipe(tmp_path, "boolq:test")
    needles = [
        "unknown split suffix ':test'",
        "boolq:train or boolq:heldout",
        "valid suffixes: :train, :heldout",
    ]
    assert_refused(run_cli("validate", recipe), "data.train:", *needles)
    assert_refused(
        run_cli("prepare", "--dataset", "boolq:test", "--tokenizer", TOKENIZER, "--out", tmp_path / "out"),
        *needles,
    )
    assert not (tmp_path / "out").exists()


def test_an_unknown_part_of_a_file_names_the_valid_parts_not_a_flag(tmp_path):
    data = tmp_path / "f.json"
    data.write_bytes(records())
    spec = f"{data}:tset"
    needles = [f"'tset' is not a split part of the file {data}", f"{data}:train", f"{data}:test"]
    assert_refused(run_cli("validate", write_recipe(tmp_path, spec)), *needles)
    nll = run_cli("eval", "--metric", "nll", "--model", TOKENIZER, "--tasks", spec, "--out", tmp_path / "ev")
    assert_refused(nll, *needles)
    assert "--dataset" not in nll.output and not (tmp_path / "ev" / "nll").exists()
