"""`--overwrite` never deletes what rocoft-llm did not write: train, merge, prepare and fetch-model refuse
the current directory and its ancestors, the home directory, an ancestor of the recipe, an unmarked
non-empty directory, a regular file and a directory a live run holds (naming its pid). Every case runs
inside a sandbox whose every file (name + sha256) is compared before and after: user files survive."""

import os
import subprocess
import sys
import time

import pytest

from rocoft_llm.errors import RoCoFTError
from rocoft_llm.ownership import LOCK_FILE, OWNER_MARKER, RunLock, check_replaceable, lock_holder
from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.paths import TINY
from tests.helpers.recipes import REPO, tiny_recipe

UNMARKED = "not written by rocoft-llm"


def user_files(root):
    """A sandbox with a user's own files in it (what must survive every refused case)."""
    (root / "notes.txt").write_text("a user's own notes")
    (root / "userdir").mkdir()
    (root / "userdir" / "thesis.tex").write_text("precious")
    (root / "afile").write_text("a regular file")
    return root


def train_args(sb, target):
    recipe = tiny_recipe(sb, "r", output={"dir": str(target), "report_to": []})
    return ["train", recipe, "--overwrite"]


def merge_args(sb, target):
    (sb / "adapter_in").mkdir(exist_ok=True)  # --adapter must exist; the refusal comes before it is read
    return ["merge", "--base", sb / "nobase", "--adapter", sb / "adapter_in", "--out", target, "--overwrite"]


def prepare_args(sb, target):
    data = TINY / "data" / "train.json"
    return ["prepare", "--dataset", data, "--tokenizer", TINY / "llama", "--out", target, "--overwrite"]


COMMANDS = {"train": train_args, "merge": merge_args, "prepare": prepare_args}
TARGETS = {
    # name: (target relative to the sandbox, or a callable of it; message parts)
    "the current directory": (".", ["it is the current directory"]),
    "the parent of the current directory": ("userdir/..", ["it is the current directory"]),
    "an ancestor of the current directory": ("..", ["it contains the current directory"]),
    "the home directory": ("home", ["it is the home directory"]),
    "an unmarked user directory": ("userdir", [UNMARKED, "userdir"]),
    "a regular file": ("afile", ["is an existing file, not a directory"]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("target", list(TARGETS))
def test_overwrite_refuses_what_rocoft_llm_did_not_write(tmp_path, monkeypatch, command, target):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    user_files(sandbox)
    (sandbox / "home").mkdir()
    (sandbox / "home" / ".bashrc").write_text("alias ll='ls -l'")
    (tmp_path / "args").mkdir()
    monkeypatch.setenv("HOME", str(sandbox / "home"))
    monkeypatch.chdir(sandbox)
    rel, needles = TARGETS[target]
    if command == "prepare" and rel == "afile":  # click's own path check answers first
        needles = ["Directory 'afile' is a file"]
    args = COMMANDS[command](tmp_path / "args", rel)
    before = snapshot(tmp_path)
    assert_refused(run_cli(*args), *needles)
    assert snapshot(tmp_path) == before  # data-loss guard: every user file (and everything else) survives


def test_train_refuses_to_replace_the_recipe_folder(tmp_path):
    user_files(tmp_path)
    recipe = tiny_recipe(tmp_path, "r", output={"dir": str(tmp_path), "report_to": []})
    before = snapshot(tmp_path)
    assert_refused(run_cli("train", recipe, "--overwrite"), f"it contains the recipe {recipe}")
    assert snapshot(tmp_path) == before


def test_the_filesystem_root_is_never_replaceable(tmp_path):
    with pytest.raises(RoCoFTError, match="it is the filesystem root"):
        check_replaceable("/", "output")


def test_validate_and_train_refuse_an_output_dir_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    recipe = tiny_recipe(tmp_path, "r", output={"dir": str(tmp_path / "afile"), "report_to": []})
    before = snapshot(tmp_path)
    assert_refused(run_cli("validate", recipe), "output.dir:", "is an existing file, not a directory")
    for extra in ([], ["--overwrite"]):
        assert_refused(run_cli("train", recipe, *extra), "afile", "is an existing file, not a directory")
    assert snapshot(tmp_path) == before


def test_marked_and_empty_directories_are_replaced(tmp_path):
    """What rocoft-llm wrote (the marker) or an empty directory is replaced; the marker names the writer."""
    recipe = tiny_recipe(tmp_path, "run", train={"max_steps": 2})
    assert run_cli("train", recipe).exit_code == 0
    marker = (tmp_path / "run" / OWNER_MARKER).read_text()
    assert '"written_by": "rocoft-llm"' in marker and '"kind": "training run"' in marker
    assert (tmp_path / "run" / "adapter" / OWNER_MARKER).is_file()
    assert_refused(run_cli("train", recipe), "is not empty", "--overwrite")
    again = run_cli("train", recipe, "--overwrite")
    assert again.exit_code == 0, again.output
    (tmp_path / "empty").mkdir()
    out = run_cli(*prepare_args(tmp_path, tmp_path / "empty"))
    assert out.exit_code == 0, out.output
    assert (tmp_path / "empty" / OWNER_MARKER).is_file()
    replaced = run_cli(*prepare_args(tmp_path, tmp_path / "empty"))
    assert replaced.exit_code == 0, replaced.output


def test_fetch_model_overwrite_refuses_an_unmarked_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("ROCOFT_CACHE", str(tmp_path / "cache"))
    entry = tmp_path / "cache" / "models" / "smollm2-135m"
    entry.mkdir(parents=True)
    (entry / "mine.bin").write_text("not the tool's")
    before = snapshot(tmp_path)
    assert_refused(run_cli("fetch-model", "smollm2-135m", "--overwrite"), UNMARKED)
    assert snapshot(tmp_path) == before


def test_a_live_run_lock_is_refused_by_overwrite_resume_and_a_second_train(tmp_path):
    recipe = tiny_recipe(tmp_path, "run", train={"max_steps": 2})
    assert run_cli("train", recipe).exit_code == 0
    (tmp_path / "run" / "summary.json").unlink()  # unfinished: resume has work to do
    with RunLock(tmp_path / "run"):
        before = snapshot(tmp_path / "run")
        pid = f"pid {os.getpid()}"
        for args in (["--overwrite"], ["train.resume=auto"], []):
            assert_refused(run_cli("train", recipe, *args), "in use by a live run", pid)
        assert_refused(run_cli(*prepare_args(tmp_path, tmp_path / "run")), "in use by a live run", pid)
        assert snapshot(tmp_path / "run") == before
    resumed = run_cli("train", recipe, "train.resume=auto")  # released: the run continues
    assert resumed.exit_code == 0, resumed.output


def test_the_os_releases_the_lock_of_a_killed_process(tmp_path):
    code = (
        "import sys, time; from rocoft_llm.ownership import RunLock; "
        "l = RunLock(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert lock_holder(tmp_path) == f"pid {proc.pid}"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    deadline = time.time() + 10
    while lock_holder(tmp_path) is not None and time.time() < deadline:
        time.sleep(0.05)
    assert lock_holder(tmp_path) is None and (tmp_path / LOCK_FILE).is_file()
    with RunLock(tmp_path):
        assert lock_holder(tmp_path) == f"pid {os.getpid()}"


def test_a_failed_start_does_not_block_the_corrected_rerun(tmp_path):
    recipe = tiny_recipe(tmp_path, "run", train={"global_batch_size": 4096, "micro_batch_size": 4})
    assert_refused(run_cli("train", recipe), "do not fill one global batch")
    assert (tmp_path / "run" / "recipe.resolved.yaml").is_file()  # written before the failure
    fixed = tiny_recipe(tmp_path, "run", train={"max_steps": 2})
    result = run_cli("train", fixed)
    assert result.exit_code == 0, result.output


def test_temporaries_of_a_killed_writer_are_removed_on_the_next_run(tmp_path, caplog):
    """A killed prepare/merge/fetch-model leaves `.NAME.tmp-PID-*` beside its output: the next run removes
    those whose pid is dead, and leaves a live writer's alone."""
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=30)
    stale = tmp_path / f".out.tmp-{dead.pid}-abc123"
    (stale / "tokenized").mkdir(parents=True)
    (stale / "tokenized" / "data.arrow").write_bytes(b"\0" * 4096)
    old = tmp_path / f".out.old-{dead.pid}"
    old.mkdir()
    live = tmp_path / f".out.tmp-{os.getpid()}-live"
    live.mkdir()
    with caplog.at_level("WARNING", logger="rocoft_llm"):
        result = run_cli(*prepare_args(tmp_path, tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert not stale.exists() and not old.exists() and live.is_dir()
    assert f"removed {stale}, left behind by an interrupted run (pid {dead.pid})" in caplog.text
