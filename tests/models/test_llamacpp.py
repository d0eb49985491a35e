"""llama.cpp itself (through llama-cpp-python) runs what `export-gguf` writes:

- a merged RoCoFT tiny Llama (grouped-query attention): llama.cpp's logits for a token sequence equal
  transformers' within a stated tolerance (F32 and F16);
- the real SmolLM2-135M-Instruct with a RoCoFT update, merged (bench/llamacpp_check.py): llama.cpp's
  greedy continuations of five prompts are the merged HF model's token for token (F32, F16), and it
  tokenizes the prompts as transformers does (the GGUF keeps the source's `tokenizer.ggml.pre`; with
  a tokenizer rebuilt from tokenizer.json it does not).

llama-cpp-python is part of the dev extras (it builds llama.cpp from source: about 6 minutes on 2
cores); without it these tests skip and say why."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from rocoft_llm.models.gguf_export import export_gguf
from tests.helpers.bench import load_bench_script
from tests.helpers.models import merged_llama

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed (pip install -e .[dev])"
)
check = load_bench_script("llamacpp_check")
#: max |logit difference| / max |logit|, llama.cpp against transformers (fp32 reference)
REL_TOL = {"f32": 1e-5, "f16": 4e-3}  # measured: 6.8e-7, 2.0e-3 (F32 KV cache)


def test_llamacpp_logits_of_an_exported_merged_model_equal_transformers(tmp_path):
    merged = merged_llama(tmp_path)
    ids = torch.randint(3, 460, (24,), generator=torch.Generator().manual_seed(1)).tolist()
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(merged).eval()(torch.tensor([ids])).logits[0].numpy()
    for outtype, tol in REL_TOL.items():
        path = export_gguf(merged, tmp_path / f"m-{outtype}.gguf", outtype)
        llm = llama_cpp.Llama(
            model_path=str(path), n_ctx=64, n_threads=1, logits_all=True, verbose=False,
            type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,  # its KV cache is F16 by default
        )  # fmt: skip
        llm.eval(ids)
        got = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
        llm.close()
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err <= tol, (outtype, float(err))
    assert err > 0  # F16 really is stored at lower precision


@pytest.mark.slow
def test_llamacpp_greedy_answers_of_a_finetuned_smollm2_equal_transformers(tmp_path):
    """Needs the package registry once (the model is cached afterwards)."""
    result = check.check(None, tmp_path, max_new_tokens=24, threads=1)
    types = result["types"]
    for outtype in ("f32", "f16"):
        assert types[outtype]["identical"] == len(check.PROMPTS), types[outtype]
    assert all(types[t]["tokenization_equal"] for t in check.OUTTYPES)
    # why the base GGUF's tokenizer fields are kept: rebuilt from tokenizer.json, llama.cpp splits differently
    assert not types[check.REBUILT]["tokenization_equal"]
    assert len({tuple(c) for c in result["hf"]}) == len(check.PROMPTS)  # five different answers
