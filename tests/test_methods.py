"""The method registry: a fourth method declared in this file only trains, resumes bit-identically
and evaluates through the unchanged train / checkpoint / eval code, and the built-in methods are
found by name (unknown names are errors that list the registered ones)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rocoft_llm.config import load_recipe
from rocoft_llm.distributed import is_main
from rocoft_llm.errors import RecipeError, RoCoFTError
from rocoft_llm.eval.identity import load_for_eval
from rocoft_llm.io_utils import sha256_file
from rocoft_llm.methods import Method, get_method, method_names, register, unregister
from rocoft_llm.train.loop import Preempted
from rocoft_llm.train.run import train
from tests.helpers.recipes import STEPS, losses, tiny_recipe


class NormsOnly(Method):
    """Toy method: only the RMSNorm weights train; the product is one safetensors file of them."""

    name = "norms-only"
    output_folder = "norms"

    def prepare(self, model, recipe, calibration=None):
        for name, p in model.named_parameters():
            p.requires_grad_("norm" in name)
        return model

    def save(self, module, target: Path, recipe, metadata: dict) -> None:
        if is_main():
            target.mkdir(parents=True, exist_ok=True)
            state = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
            save_file(state, str(target / "norms.safetensors"))

    def load(self, folder: Path, load_base, dtype: str, device: str):
        net = load_base()
        missing = set(load_file(str(folder / "norms.safetensors"))) - set(dict(net.named_parameters()))
        assert not missing, missing
        net.load_state_dict(load_file(str(folder / "norms.safetensors")), strict=False)
        return net, sha256_file(folder / "norms.safetensors")


@pytest.fixture
def toy_method():
    register(NormsOnly())
    yield get_method("norms-only")
    unregister("norms-only")


def norms(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "norms" / "norms.safetensors"))


def test_a_registered_method_trains_resumes_and_evaluates_with_no_other_edits(
    tmp_path, monkeypatch, toy_method
):
    sections = {"method": "norms-only", "train": {"lr": 0.05}}
    straight = train(str(tiny_recipe(tmp_path, "straight", **sections)))
    trained = norms(straight)
    assert trained and all("norm" in n for n in trained)
    assert losses(straight)[-1] < losses(straight)[0]

    recipe = tiny_recipe(tmp_path, "resumed", **sections)
    monkeypatch.setenv("ROCOFT_STOP_AT_STEP", str(STEPS // 2))
    with pytest.raises(Preempted):
        train(str(recipe))
    monkeypatch.delenv("ROCOFT_STOP_AT_STEP")
    resumed = train(str(recipe), ["train.resume=auto"])
    for name, t in trained.items():
        assert torch.equal(norms(resumed)[name], t), name
    assert losses(resumed) == losses(straight)

    net, _, identity, _ = load_for_eval(run=str(straight))
    assert identity["method"] == "norms-only" and identity["adapter"] == str(straight / "norms")
    params = dict(net.named_parameters())
    for name, t in trained.items():
        torch.testing.assert_close(params[name], t, rtol=0, atol=0)
    base, _, _, _ = load_for_eval(run=str(straight), base_only=True)
    assert any(not torch.equal(dict(base.named_parameters())[n], t) for n, t in trained.items())


def test_builtin_methods_are_registered_and_unknown_names_are_refused(tmp_path):
    assert {"rocoft", "lora", "full"} <= set(method_names())
    assert [get_method(m).output_folder for m in ("rocoft", "lora", "full")] == [
        "adapter",
        "lora_adapter",
        "model",
    ]
    with pytest.raises(RoCoFTError, match="'dora' is not a registered method; use one of rocoft, lora, full"):
        get_method("dora")
    with pytest.raises(RecipeError, match="method: 'dora' is not a registered method; use one of rocoft"):
        load_recipe(str(tiny_recipe(tmp_path, method="dora")), [])


def test_a_section_of_another_method_is_refused(tmp_path):
    with pytest.raises(RecipeError, match="lora: section given but method is 'rocoft'"):
        load_recipe(str(tiny_recipe(tmp_path, lora={"r": 4})), [])
