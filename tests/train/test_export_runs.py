"""`rocoft-llm export-peft` on real `rocoft-llm train` output directories: a RoCoFT run exports to a peft
LoRA with the evaluated model's logits; LoRA and full runs are refused with nothing written."""

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from rocoft_llm.cli import main
from rocoft_llm.eval.identity import load_for_eval
from rocoft_llm.train.run import train
from tests.helpers.models import batch
from tests.helpers.recipes import TINY, tiny_recipe

pytestmark = pytest.mark.slow


def saved_base(tmp_path):
    """The tiny Llama with random weights saved to disk (export reads the original rows from it)."""
    torch.manual_seed(0)
    base = tmp_path / "base"
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(TINY / "llama")).save_pretrained(base)
    AutoTokenizer.from_pretrained(TINY / "llama").save_pretrained(base)
    return base


def test_rocoft_run_exports_and_other_methods_are_refused(tmp_path):
    from peft import PeftModel

    base = saved_base(tmp_path)
    model = {"name_or_path": str(base), "random_init": False}
    run = train(str(tiny_recipe(tmp_path, "rocoft", model=model, rocoft={"mode": "column"})))
    res = CliRunner().invoke(
        main, ["export-peft", str(run), "--out", str(tmp_path / "peft"), "--pad-rank", "8"]
    )
    assert res.exit_code == 0, res.output
    net, _, _, _ = load_for_eval(run=str(run))  # what `rocoft-llm eval --run` evaluates
    b = batch(seed=1)
    with torch.no_grad():
        lora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(tmp_path / "peft"))
        torch.testing.assert_close(lora.eval()(**b).logits, net(**b).logits, rtol=1e-5, atol=1e-5)

    lora_run = train(str(tiny_recipe(tmp_path, "lora", model=model, method="lora")))
    res = CliRunner().invoke(main, ["export-peft", str(lora_run), "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "already a peft LoRA directory" in res.output, res.output
    assert not (tmp_path / "x").exists()
