"""Files shipped inside the package (read with importlib.resources) and ``rocoft-llm recipes``."""

import pytest
from click.testing import CliRunner

from rocoft_llm.cli import main
from rocoft_llm.errors import RoCoFTError
from rocoft_llm.shipped import read_shipped_text, shipped, shipped_recipes
from tests.helpers.paths import REPO


def test_everything_the_commands_read_is_inside_the_package():
    for parts in [
        ("data", "catalog.yaml"),
        ("train.sbatch.tmpl",),
        ("config", "known_models.json"),
        ("eval", "lm_eval_tasks", "rocoft_boolq_gen.yaml"),
        ("recipes", "tiny", "llama", "tokenizer.json"),
    ]:
        assert read_shipped_text(*parts), parts
    assert "tiny-llama-rows.yaml" in shipped_recipes() and "llama2-7b-math.yaml" in shipped_recipes()
    # the checkout's recipes/ is the same folder (a link), so editing it edits what ships
    assert (REPO / "recipes").resolve() == (REPO / "rocoft_llm" / "recipes").resolve()
    with pytest.raises(
        RoCoFTError, match=r"rocoft_llm/nope.yaml is missing from the installed package; reinstall"
    ):
        shipped("nope.yaml")


def test_recipes_command_lists_and_copies_without_clobbering(tmp_path):
    listed = CliRunner().invoke(main, ["recipes"])
    assert listed.exit_code == 0 and "llama2-13b-math.yaml" in listed.output
    copied = CliRunner().invoke(main, ["recipes", "--copy", str(tmp_path)])
    assert copied.exit_code == 0, copied.output
    assert (tmp_path / "recipes" / "tiny" / "data" / "train.json").is_file()
    (tmp_path / "recipes" / "mine.yaml").write_text("model: {}\n")
    again = CliRunner().invoke(main, ["recipes", "--copy", str(tmp_path)])
    assert again.exit_code == 2 and "not empty; pass --overwrite" in again.output
    forced = CliRunner().invoke(main, ["recipes", "--copy", str(tmp_path), "--overwrite"])
    assert forced.exit_code == 0 and (tmp_path / "recipes" / "mine.yaml").is_file()
