"""`rocoft-llm export-gguf`: a merged RoCoFT llama model written with the gguf package's writer loads back
through transformers' GGUF loader with the merged model's logits (F32 exactly, F16 / Q8_0 within a
stated tolerance) and the same tokenizer ids; non-llama models and existing files are refused."""

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter, trainable_parameters
from rocoft_llm.cli import main
from rocoft_llm.errors import RoCoFTError
from rocoft_llm.models.gguf_export import export_gguf
from rocoft_llm.rocoft.merge_dir import merge_to_directory
from tests.helpers.models import tiny_model
from tests.helpers.paths import TINY

pytest.importorskip("gguf")
#: max |logit difference| / max |logit| after a round trip, per output type
REL_TOL = {"f32": 0.0, "f16": 2e-3, "q8_0": 6e-2}  # measured: 0, 1.1e-3, 3.7e-2


def merged_llama(tmp_path):
    """A RoCoFT-trained tiny Llama (grouped-query attention, so q and k permute differently), merged."""
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(TINY / "llama", num_key_value_heads=2)
    base_dir = tmp_path / "base"
    AutoModelForCausalLM.from_config(config).save_pretrained(base_dir)
    AutoTokenizer.from_pretrained(TINY / "llama").save_pretrained(base_dir)
    model = apply_rocoft(AutoModelForCausalLM.from_pretrained(base_dir), RoCoFTConfig(mode="row", rank=2))
    with torch.no_grad():
        for p in trainable_parameters(model).values():
            p.add_(0.1 * torch.randn(p.shape))
    save_adapter(model, tmp_path / "adapter", base_model=str(base_dir))
    return merge_to_directory(str(base_dir), tmp_path / "adapter", tmp_path / "merged", progress=False)


def test_gguf_round_trip_through_transformers(tmp_path):
    merged = merged_llama(tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(merged).eval()
    ids = torch.randint(3, 460, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = hf(ids).logits
    for outtype, tol in REL_TOL.items():
        res = CliRunner().invoke(
            main,
            ["export-gguf", str(merged), "--out", str(tmp_path / f"m-{outtype}.gguf"), "--outtype", outtype],
        )
        assert res.exit_code == 0, res.output
        back = AutoModelForCausalLM.from_pretrained(
            tmp_path, gguf_file=f"m-{outtype}.gguf", dtype=torch.float32
        )
        with torch.no_grad():
            err = (back.eval()(ids).logits - want).abs().max() / want.abs().max()
        assert err <= tol, (outtype, float(err))
        if outtype != "f32":
            assert err > 0  # really stored at lower precision
    text = "Below is an instruction. the correct answer is true"
    tok = AutoTokenizer.from_pretrained(merged)
    assert (
        AutoTokenizer.from_pretrained(tmp_path, gguf_file="m-f32.gguf")(text).input_ids == tok(text).input_ids
    )


def test_gguf_export_refuses_non_llama_and_existing_files(tmp_path):
    bloom = tmp_path / "bloom"
    tiny_model("bloom").save_pretrained(bloom)
    with pytest.raises(RoCoFTError, match="llama-architecture models only.*'bloom'"):
        export_gguf(bloom, tmp_path / "b.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".b.gguf*"))
    (tmp_path / "taken.gguf").write_text("x")
    with pytest.raises(RoCoFTError, match="already exists.*--overwrite"):
        export_gguf(bloom, tmp_path / "taken.gguf")
    assert (tmp_path / "taken.gguf").read_text() == "x"
