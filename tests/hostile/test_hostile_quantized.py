"""Hostile inputs around model.quantize through the real CLI: bitsandbytes missing (validate and train
refuse with the install line, nothing written) and a base checkpoint that was saved already quantized
given to merge / export-peft as if it were the full-precision base (refused, nothing written), and
eval --full-precision-base where it cannot serve."""

import sys

import pytest

pytest.importorskip("bitsandbytes")

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter  # noqa: E402
from rocoft_llm.model_loading import load_model  # noqa: E402
from tests.helpers.cli import REPO_TINY, assert_refused, run_cli  # noqa: E402
from tests.helpers.quantized import packed_nf4_copy  # noqa: E402


@pytest.mark.parametrize("command", ["validate", "train"])
def test_bitsandbytes_missing_is_refused_with_the_install_line(tmp_path, monkeypatch, command):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {REPO_TINY / 'llama'}, dtype: float32, quantize: nf4}}\n"
        f"data: {{train: [{REPO_TINY / 'data' / 'train.json'}]}}\n"
        "train: {global_batch_size: 8, micro_batch_size: 4, max_steps: 2, precision: fp32}\n"
        f"output: {{dir: {tmp_path / 'out'}}}\n"
    )
    monkeypatch.setitem(
        sys.modules, "bitsandbytes", None
    )  # `import bitsandbytes` fails, as when not installed
    assert_refused(
        run_cli(command, recipe),
        "model.quantize: nf4 needs bitsandbytes, which is not installed",
        "pip install 'rocoft-llm[quant]'",
    )
    assert not (tmp_path / "out").exists()


@pytest.fixture
def nf4_adapter(tmp_path):
    """(full-precision base directory, adapter trained on its nf4 storage) of the tiny Llama."""
    base = tmp_path / "base"
    load_model(str(REPO_TINY / "llama"), dtype="float32", random_init=True).save_pretrained(base)
    model = load_model(str(base), dtype="float32", quantize="nf4")
    apply_rocoft(model, RoCoFTConfig(mode="column", rank=2, selection="random"))
    save_adapter(model, tmp_path / "adapter")
    return base, tmp_path / "adapter"


def test_an_already_quantized_checkpoint_is_not_taken_for_the_base(tmp_path, nf4_adapter):
    base, adapter = nf4_adapter
    packed = packed_nf4_copy(base, tmp_path / "packed")
    needles = (
        f"base {packed} is a quantized checkpoint (nf4)",
        "Pass the full-precision base the run loaded",
    )
    assert_refused(
        run_cli("merge", "--base", packed, "--adapter", adapter, "--out", tmp_path / "m"), *needles
    )
    assert_refused(run_cli("export-peft", adapter, "--base", packed, "--out", tmp_path / "p"), *needles)
    assert not (tmp_path / "m").exists() and not (tmp_path / "p").exists()


def test_full_precision_base_refuses_what_it_cannot_serve(tmp_path, nf4_adapter):
    """eval --full-precision-base on a RoCoFT adapter (its slices are checked against the quantized
    rows) names export-peft; on an adapter trained unquantized it says the flag changes nothing;
    nothing is written either way."""
    base, adapter = nf4_adapter
    tasks = tmp_path / "t.json"
    tasks.write_text('[{"instruction": "1+1?", "input": "", "output": "2", "answer": "2"}]')
    out = tmp_path / "e"
    args = ("--tasks", tasks, "--metric", "nll", "--out", out, "--full-precision-base")
    assert_refused(run_cli("eval", "--adapter", adapter, *args), "is a RoCoFT adapter", "export-peft")
    plain = load_model(str(base), dtype="float32")
    apply_rocoft(plain, RoCoFTConfig(mode="column", rank=2, selection="random"))
    save_adapter(plain, tmp_path / "plain")
    assert_refused(run_cli("eval", "--adapter", tmp_path / "plain", *args), "not trained on a quantized base")
    assert not out.exists()
