"""What a new user meets in the first hour says what is true: the tiny recipes name the make target
that runs them, the time claims agree with each other, README's first screen shows how to try a
model, `--explain` describes a string as a string, `prepare --preview` of plain Alpaca records is
not a traceback, and a piped `train` prints its result after its progress."""

import json
import re
import subprocess
import sys

from click.testing import CliRunner

from rocoft_llm.cli import main
from tests.helpers.paths import REPO, TINY
from tests.helpers.recipes import tiny_recipe


def header(name: str) -> str:
    lines = (REPO / "recipes" / name).read_text().splitlines()
    return "\n".join(line for line in lines if line.startswith("#"))


def test_tiny_recipes_name_the_make_target_that_runs_them():
    makefile = (REPO / "Makefile").read_text()
    target = makefile.split("\ndemo-tiny:", 1)[1].split("\n\n", 1)[0]
    assert "recipes/tiny-llama-pretrain.yaml" in target and "recipes/tiny-llama-demo.yaml" in target
    assert "`make demo-tiny`" in header("tiny-llama-demo.yaml")
    for name in ("tiny-llama-demo.yaml", "tiny-llama-rows.yaml", "tiny-llama-pretrain.yaml"):
        assert "`make demo`" not in header(name), name  # make demo is the SmolLM2 one


def test_time_claims_agree():
    readme = (REPO / "README.md").read_text()
    demo = header("smollm2-135m-demo.yaml")
    assert "about 7 minutes on 2 idle cores" in readme and "about 7 minutes on 2 idle cores" in demo
    assert "7 min 18 s" in (REPO / "RESULTS.md").read_text()
    texts = [readme] + [(REPO / "docs" / f).read_text() for f in ("recipes.md", "training.md")]
    texts.append((REPO / "rocoft_llm" / "cli" / "training.py").read_text())
    for text in texts:  # what tiny-llama-rows takes is printed by `run finished`, not promised
        for line in text.splitlines():
            if "tiny-llama-rows" in line:
                assert not re.search(r"seconds|minute", line), line


def test_readme_first_screen_shows_how_to_try_a_model():
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:24])
    assert "rocoft-llm generate --run" in first_screen and "try your model" in first_screen


def test_explain_describes_a_string_as_a_string():
    result = CliRunner().invoke(main, ["validate", "--explain", "data.template"])
    assert (
        result.exit_code == 0 and "constraint: not empty" in result.output and "item(s)" not in result.output
    )


def test_preview_of_alpaca_records_without_answers(tmp_path):
    records = [{"instruction": "Give three tips for staying healthy.", "input": "", "output": "Sleep."}]
    (tmp_path / "alpaca.json").write_text(json.dumps(records))
    result = CliRunner().invoke(
        main,
        ["prepare", "--dataset", str(tmp_path / "alpaca.json"), "--tokenizer", str(TINY / "llama")]
        + ["--bad-records", "drop", "--preview", "1"],
    )
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "Give three tips" in result.output


def test_piped_train_prints_its_result_after_its_progress(tmp_path):
    """Also: a warmup as long as the run is no error; the warning says once what happens."""
    recipe = tiny_recipe(tmp_path, train={"max_steps": 2, "warmup_steps": 4})
    proc = subprocess.run(
        [sys.executable, "-m", "rocoft_llm.cli", "train", str(recipe)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe, as `2>&1 | tee log` makes it
        text=True,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    assert out.index("step 1/2") < out.index("run finished") < out.index("run written to"), out[-3000:]
    assert out.count("train.warmup_steps: 4 >= the run's 2 optimizer steps") == 1, out[-3000:]
    assert "1/4 of train.lr at the last step and never decays" in out
