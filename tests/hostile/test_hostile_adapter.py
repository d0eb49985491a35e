"""Hostile adapters and base models through the real CLI (`merge`, `eval`): each is refused with exit 2,
a message naming the file and the fix, and nothing written or damaged."""

import copy
import json
import shutil

import pytest

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter
from rocoft_llm.rocoft.adapter import CONFIG_FILE, WEIGHTS_FILE, config_hash
from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.models import tiny_model


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapter")
    base = tiny_model("llama")
    base.save_pretrained(root / "base")
    tiny_model("llama", seed=1).save_pretrained(root / "other_base")  # same shapes, other weights
    tiny_model("bloom").save_pretrained(root / "bloom_base")
    model = apply_rocoft(copy.deepcopy(base), RoCoFTConfig(rank=2, selection="random"))
    save_adapter(model, root / "adapter")
    return root


def edit_config(path, change):
    data = json.loads((path / CONFIG_FILE).read_text())
    change(data)
    (path / CONFIG_FILE).write_text(json.dumps(data))


def first_module(data):
    return data["modules"][next(iter(data["modules"]))]


def v1_with_rank(rank):
    """A format-1 adapter (no config hash, still readable) whose rank was edited."""

    def change(data):
        data.pop("config_sha256")
        data["format_version"] = 1
        data["rank"] = rank

    return change


def _set_v2_rehashed(data, **kw):
    data.update(kw)
    data["config_sha256"] = config_hash(data)


CASES = {
    # name: (how the adapter directory is damaged, which base, expected message parts)
    "different base, same shapes": (
        None,
        "other_base",
        [
            "differ from the model the adapter was trained on",
            "Pass the base model the adapter was trained on",
        ],
    ),
    "indices edited": (
        lambda p: edit_config(p, lambda d: first_module(d)["indices"].__setitem__(0, 7)),
        "base",
        [CONFIG_FILE, "was edited after it was saved", "save the adapter again"],
    ),
    "rank edited": (
        lambda p: edit_config(p, lambda d: d.__setitem__("rank", 3)),
        "base",
        ["was edited after it was saved"],
    ),
    "rank edited in a format-1 adapter": (
        lambda p: edit_config(p, v1_with_rank(3)),
        "base",
        [CONFIG_FILE, "needs 3 distinct ones", "save the adapter again"],
    ),
    "duplicate indices, hash recomputed": (
        lambda p: edit_config(
            p,
            lambda d: _set_v2_rehashed(
                d, modules={k: {**v, "indices": [0, 0]} for k, v in d["modules"].items()}
            ),
        ),
        "base",
        [CONFIG_FILE, "needs 2 distinct ones"],
    ),
    "tensor file truncated": (
        lambda p: (p / WEIGHTS_FILE).write_bytes((p / WEIGHTS_FILE).read_bytes()[:100]),
        "base",
        [WEIGHTS_FILE, "does not match the sha256", "Restore it"],
    ),
    "config not JSON": (
        lambda p: (p / CONFIG_FILE).write_text("{oops"),
        "base",
        [CONFIG_FILE, "is not valid JSON", "line 1"],
    ),
    "config not UTF-8": (
        lambda p: (p / CONFIG_FILE).write_bytes(b'{"a": "\xff\xfe"}'),
        "base",
        [CONFIG_FILE, "not UTF-8", "line 1"],
    ),
    "config a JSON list": (lambda p: (p / CONFIG_FILE).write_text("[]"), "base", ["format_version None"]),
    "config missing (partial save)": (
        lambda p: (p / CONFIG_FILE).unlink(),
        "base",
        ["has no adapter_config.json", "Use a complete adapter directory"],
    ),
    "unsupported format": (
        lambda p: edit_config(p, lambda d: d.__setitem__("format_version", 9)),
        "base",
        ["format_version 9 is not supported"],
    ),
    "base of another architecture": (None, "bloom_base", ["model_type 'llama'", "bloom"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_merge_refuses(made, tmp_path, case):
    damage, base, needles = CASES[case]
    adapter = tmp_path / "adapter"
    shutil.copytree(made / "adapter", adapter)
    if damage:
        damage(adapter)
    before = snapshot(adapter, made / base)
    result = run_cli("merge", "--base", made / base, "--adapter", adapter, "--out", tmp_path / "merged")
    assert_refused(result, *needles)
    assert not (tmp_path / "merged").exists() and not list(tmp_path.glob(".merged*"))
    assert snapshot(adapter, made / base) == before


def test_merge_never_replaces_an_existing_output(made, tmp_path):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("merge", "--base", made / "base", "--adapter", made / "adapter", "--out", out)
    assert_refused(result, "already exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_eval_refuses_an_edited_adapter_before_loading_a_model(made, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(made / "adapter", adapter)
    edit_config(adapter, lambda d: d.__setitem__("rank", 3))
    tasks = tmp_path / "t.json"
    tasks.write_text(json.dumps([{"instruction": "1+1?", "input": "", "output": "2", "answer": "2"}]))
    result = run_cli(
        "eval", "--model", made / "base", "--adapter", adapter, "--tasks", tasks, "--out", tmp_path / "e"
    )
    assert_refused(result, "was edited after it was saved")
    assert not (tmp_path / "e").exists()


def test_the_untouched_adapter_still_merges(made, tmp_path):
    result = run_cli("merge", "--base", made / "base", "--adapter", made / "adapter", "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "rocoft_merge.json").is_file()
