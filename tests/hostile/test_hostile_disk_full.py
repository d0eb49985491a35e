"""A full disk at every write site (metrics, checkpoint, adapter, merged model, prepared data), injected as
the OS reports it (OSError ENOSPC, or torch's failed-write RuntimeError): one clear message naming the
file, the free space, what to free and the intact checkpoint; no partial directory or half line stays;
after space is freed `train.resume=auto` finishes the run bitwise equal to an uninterrupted one."""

import errno
import json
import os

import pytest
import torch

from rocoft_llm.io_utils import append_line
from rocoft_llm.rocoft.adapter import read_adapter_tensors
from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.paths import TINY
from tests.helpers.recipes import STEPS, losses, tiny_recipe

FULL = "no space left on the device while writing"
SAVES = {"save_steps": 2, "save_total_limit": 10}


def enospc(*args, **kwargs):
    """What a write that meets a full disk raises (the file named, as the OS names it)."""
    raise OSError(errno.ENOSPC, "No space left on device", str(args[1]) if len(args) > 1 else None)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    root = tmp_path_factory.mktemp("straight")
    result = run_cli("train", tiny_recipe(root, "run", train=SAVES))
    assert result.exit_code == 0, result.output
    return root / "run"


def assert_same_as(run, ref):
    """Bitwise the same run: adapter tensors and every logged loss."""
    got, want = read_adapter_tensors(run / "adapter"), read_adapter_tensors(ref / "adapter")
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert losses(run) == losses(ref)


def no_temporaries(root):
    return not [p for p in root.rglob(".*") if ".tmp" in p.name or ".old-" in p.name]


def test_full_disk_in_metrics_then_torn_line_then_resume_is_bitwise_equal(
    straight, tmp_path, monkeypatch, caplog
):
    recipe = tiny_recipe(tmp_path, "run", train=SAVES)
    real_write = os.write

    def torn_write(fd, data):  # the 3rd metrics record: half of it reaches the disk, then ENOSPC
        if data.startswith(b'{"step": 3,'):
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", torn_write)
    result = run_cli("train", recipe)
    monkeypatch.undo()
    run = tmp_path / "run"
    assert_refused(
        result,
        f"{FULL} training metrics {run / 'metrics.jsonl'}",
        "free there",
        "free space on that filesystem",
        "The last complete checkpoint, step-00000002",
        "train.resume=auto",
    )
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]  # the half line was cut back
    (run / "metrics.jsonl").open("a").write('{"step": 3, "loss": 2.3')  # and a crash that left one
    with caplog.at_level("WARNING", logger="rocoft_llm"):
        resumed = run_cli("train", recipe, "train.resume=auto")
    assert resumed.exit_code == 0, resumed.output
    assert "dropping its torn last line 3" in caplog.text
    assert_same_as(run, straight)
    assert len(losses(run)) == STEPS


def torch_write_failure(*args, **kwargs):
    raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 15360 vs 15252")


@pytest.mark.parametrize(
    "site,fake,file",
    [
        ("safetensors", enospc, "step-00000004/trainable.safetensors"),
        ("torch.save", torch_write_failure, "step-00000004"),
    ],
)
def test_full_disk_in_a_checkpoint_keeps_the_last_complete_one(
    straight, tmp_path, monkeypatch, site, fake, file
):
    import rocoft_llm.train.checkpoint as checkpoint

    recipe = tiny_recipe(tmp_path, "run", train=SAVES)
    owner, name = (checkpoint, "save_file") if site == "safetensors" else (torch, "save")
    real = getattr(owner, name)
    calls = []

    def second_save_fails(*args, **kwargs):  # the step-2 checkpoint saves; the step-4 one meets the full disk
        calls.append(str(args[1]))
        if "step-00000004" in calls[-1]:
            return fake(*args, **kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, second_save_fails)
    result = run_cli("train", recipe)
    monkeypatch.undo()
    run = tmp_path / "run"
    assert_refused(result, f"{FULL} checkpoint", file, "free there", "step-00000002", "is intact")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000002"]  # partial one removed
    resumed = run_cli("train", recipe, "train.resume=auto")
    assert resumed.exit_code == 0, resumed.output
    assert_same_as(run, straight)


def test_full_disk_in_the_final_adapter(tmp_path, monkeypatch):
    recipe = tiny_recipe(tmp_path, "run", train=SAVES)
    monkeypatch.setattr("rocoft_llm.rocoft.adapter.save_file", enospc)
    run = tmp_path / "run"
    result = run_cli("train", recipe)
    assert_refused(result, f"{FULL} adapter {run / 'adapter'}", f"step-{STEPS:08d}", "is intact")
    assert not (run / "adapter").exists() and no_temporaries(run)


def test_full_disk_in_the_tensorboard_writer(tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    recipe = tiny_recipe(tmp_path, "run", train=SAVES, output={"report_to": ["tensorboard"]})
    monkeypatch.setattr(SummaryWriter, "add_scalar", lambda *a, **k: enospc(None, "events.out.tfevents"))
    result = run_cli("train", recipe)
    assert_refused(result, f"{FULL} tensorboard events", "free space on that filesystem")


def test_full_disk_in_a_merged_model(tmp_path, monkeypatch):
    import copy

    from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter
    from tests.helpers.models import tiny_model

    base = tiny_model("llama")
    base.save_pretrained(tmp_path / "base")
    save_adapter(apply_rocoft(copy.deepcopy(base), RoCoFTConfig(rank=2)), tmp_path / "adapter")
    monkeypatch.setattr("rocoft_llm.rocoft.merge_dir.save_file", enospc)
    before = snapshot(tmp_path)
    result = run_cli(
        "merge", "--base", tmp_path / "base", "--adapter", tmp_path / "adapter", "--out", tmp_path / "m"
    )
    assert_refused(result, f"{FULL} merged model {tmp_path / 'm'}", "free there")
    assert snapshot(tmp_path) == before  # nothing left: no partial directory, no temporary


def test_full_disk_in_prepared_data(tmp_path, monkeypatch):
    from datasets.arrow_writer import ArrowWriter

    monkeypatch.setattr(ArrowWriter, "write_batch", lambda *a, **k: enospc())  # tokens go out as they come
    before = snapshot(tmp_path)
    result = run_cli(
        "prepare",
        "--dataset",
        TINY / "data" / "train.json",
        "--tokenizer",
        TINY / "llama",
        "--out",
        tmp_path / "p",
    )
    assert_refused(result, f"{FULL} prepared data {tmp_path / 'p'}", "free there")
    assert snapshot(tmp_path) == before  # nothing left: no partial directory, no temporary, no lock file


def test_append_line_cuts_a_short_write_back(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    append_line(path, '{"step": 1}', "metrics")
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:3]))  # a short write: disk full
    with pytest.raises(Exception, match="no space left"):
        append_line(path, '{"step": 2}', "metrics")
    monkeypatch.undo()
    assert path.read_text() == '{"step": 1}\n'
