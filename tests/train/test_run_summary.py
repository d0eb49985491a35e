"""summary.json and the closing line of `train` for a run that resumes with no step left (killed
after its last checkpoint, before the summary): final_loss comes from metrics.jsonl, not null; the
line names the method's own product folder."""

import json

from tests.helpers.cli import run_cli
from tests.helpers.recipes import tiny_recipe


def test_resume_after_the_last_checkpoint_keeps_final_loss(tmp_path):
    recipe = tiny_recipe(tmp_path, "run", train={"max_steps": 2})
    first = run_cli("train", recipe)
    assert first.exit_code == 0, first.output
    assert "(adapter/, metrics.jsonl" in first.output
    run = tmp_path / "run"
    want = json.loads((run / "summary.json").read_text())["final_loss"]
    (run / "summary.json").unlink()  # killed after the final checkpoint, before the summary
    again = run_cli("train", recipe, "train.resume=auto")
    assert again.exit_code == 0, again.output
    summary = json.loads((run / "summary.json").read_text())
    assert want is not None and summary["final_loss"] == want


def test_the_closing_line_names_the_methods_product_folder(tmp_path):
    result = run_cli("train", tiny_recipe(tmp_path, "run", method="lora", train={"max_steps": 2}))
    assert result.exit_code == 0, result.output
    assert "(lora_adapter/, metrics.jsonl" in result.output and "(adapter/" not in result.output
