"""`prepare`: output directory, manifest, cache hits/misses, file lock, contamination flags."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rocoft_llm.data.prepare import MANIFEST, PrepareOptions, load_prepared, prepare
from rocoft_llm.errors import RoCoFTError
from tests.helpers.tokenizers import save_tiny_tokenizer

MATH = [
    {
        "instruction": f"Sam has {i} apples and gets {i} more. How many?",
        "input": "",
        "output": f"{i} + {i} = {2 * i}. The answer is {2 * i + (i % 3 == 0)}",
        "answer": str(2 * i),
    }
    for i in range(30)
]


@pytest.fixture
def setup(tmp_path):
    tok = save_tiny_tokenizer(tmp_path / "tok")
    root = tmp_path / "llm_adapters"
    (root / "ft-training_set").mkdir(parents=True)
    (root / "ft-training_set" / "math_10k.json").write_text(json.dumps(MATH))
    (root / "AddSub").mkdir()
    (root / "AddSub" / "test.json").write_text(json.dumps(MATH[:4]))
    return tok, root


def opts(tok, root, **kw):
    return PrepareOptions(
        datasets=["math_10k"],
        tokenizer_path=str(tok),
        llm_adapters_dir=str(root),
        test_dir=str(root),
        cutoff_len=128,
        **kw,
    )


def test_outputs_manifest_and_reports(setup, tmp_path):
    tok, root = setup
    out, manifest = prepare(opts(tok, root), out=tmp_path / "p", progress=False)
    assert (out / "records.jsonl").is_file() and (out / "tokenized").is_dir() and (out / MANIFEST).is_file()
    src = manifest["sources"][0]
    assert src["name"] == "math" and src["records"] == 30 and src["kept"] == 30 and src["members"]
    assert src["math_quirk"] == {"checked": 30, "rationale_final_answer_disagrees": 10}
    contamination = manifest["contamination"]
    assert contamination["exact_overlap"]["math"] == {"addsub": 4}
    assert set(contamination["flagged_test_sets"]) == {"addsub", "multiarith", "singleeq", "mawps"}
    assert any("math_10k-style" in w for w in contamination["warnings"])
    ds, loaded = load_prepared(out)
    assert (
        len(ds) == 30 and loaded["key"] == manifest["key"] and set(ds.column_names) >= {"input_ids", "labels"}
    )
    assert manifest["tokenizer"]["fingerprint"] and manifest["template"]["name"] == "llm_adapters"


def test_test_sets_found_through_the_env_var_are_checked_for_overlap(setup, tmp_path, monkeypatch):
    """Data located only by $ROCOFT_LLM_ADAPTERS_DIR: its test sets are found the same way (the exact
    overlap check used to be skipped silently)."""
    tok, root = setup
    monkeypatch.setenv("ROCOFT_LLM_ADAPTERS_DIR", str(root))
    options = PrepareOptions(datasets=["math_10k"], tokenizer_path=str(tok), cutoff_len=128)
    _, manifest = prepare(options, out=tmp_path / "p", progress=False)
    assert manifest["contamination"]["exact_overlap"]["math"] == {"addsub": 4}


def test_cache_hit_and_miss_on_any_input_change(setup, tmp_path):
    tok, root = setup
    out, first = prepare(opts(tok, root), out=tmp_path / "p", progress=False)
    stamp = (out / MANIFEST).stat().st_mtime_ns
    again, second = prepare(opts(tok, root), out=tmp_path / "p", progress=False)
    assert (
        second["key"] == first["key"] and (out / MANIFEST).stat().st_mtime_ns == stamp
    )  # hit: nothing rewritten
    keys = {first["key"]}
    for change in (
        {"cutoff_len": 64},
        {"template": "alpaca_clean"},
        {"train_on_inputs": True},
        {"add_eos": False},
    ):
        o = opts(tok, root)
        for k, v in change.items():
            setattr(o, k, v)
        _, m = prepare(o, out=tmp_path / f"p-{len(keys)}", progress=False)
        keys.add(m["key"])
    (root / "ft-training_set" / "math_10k.json").write_text(json.dumps(MATH[:-1]))
    _, m = prepare(opts(tok, root), out=tmp_path / "p-data", progress=False)
    keys.add(m["key"])
    assert len(keys) == 6
    with pytest.raises(RoCoFTError, match="holds a dataset prepared from different inputs"):
        prepare(opts(tok, root), out=tmp_path / "p", progress=False)
    _, m = prepare(opts(tok, root), out=tmp_path / "p", overwrite=True, progress=False)
    assert m["key"] not in (first["key"],) and m["examples"] == 29


def test_partial_directory_is_refused(setup, tmp_path):
    tok, root = setup
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "records.jsonl").write_text("")
    with pytest.raises(RoCoFTError, match="partial or foreign directory"):
        prepare(opts(tok, root), out=tmp_path / "p", progress=False)


def test_missing_sources_say_where_to_get_them(setup):
    tok, root = setup
    with pytest.raises(RoCoFTError, match="commonsense_170k.json not found under"):
        prepare(
            PrepareOptions(datasets=["commonsense"], tokenizer_path=str(tok), llm_adapters_dir=str(root)),
            progress=False,
        )
    with pytest.raises(RoCoFTError, match="neither an existing file nor a dataset id"):
        prepare(PrepareOptions(datasets=["gsm9k"], tokenizer_path=str(tok)), progress=False)


def test_hub_sources_from_local_files_make_math_gold(setup, tmp_path):
    tok, _ = setup
    hub = tmp_path / "hub"
    rows = {
        "gsm8k": [{"question": "1+1?", "answer": "1+1=<<1+1=2>>2\n#### 2"}],
        "mawps": [{"sQuestion": "2+2?", "lSolutions": [4.0]}],
        "aqua": [{"question": "3+3?", "options": ["A)6", "B)7"], "rationale": "3+3=6", "correct": "A"}],
    }
    for name, data in rows.items():
        (hub / name).mkdir(parents=True)
        (hub / name / "train.jsonl").write_text("\n".join(json.dumps(r) for r in data))
    _, manifest = prepare(
        PrepareOptions(datasets=["math"], tokenizer_path=str(tok), source="hub", hub_dir=str(hub)),
        out=tmp_path / "gold",
        progress=False,
    )
    assert manifest["sources"][0]["name"] == "math_gold"  # never math_10k's name
    records = [json.loads(line) for line in (tmp_path / "gold" / "records.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in records] == ["2", "4", "A"]
    assert records[0]["output"] == "1+1=2\nThe answer is 2."


WORKER = """
import logging, sys
logging.basicConfig(level=logging.INFO)
from rocoft_llm.data.prepare import PrepareOptions, prepare
o = PrepareOptions(datasets=["math_10k"], tokenizer_path=sys.argv[1], llm_adapters_dir=sys.argv[2], cutoff_len=128)
path, m = prepare(o, out=sys.argv[3], progress=False)
print("KEY", m["key"])
"""


@pytest.mark.slow
def test_two_processes_preparing_at_once_make_one_cache(setup, tmp_path):
    tok, root = setup
    out = tmp_path / "shared"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tok), str(root), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    logs = "".join(err for _, err in results)
    assert logs.count("prepared 30 examples") == 1 and logs.count("cache hit") == 1
    keys = {line for out_, _ in results for line in out_.splitlines() if line.startswith("KEY")}
    assert len(keys) == 1
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".shared")]
