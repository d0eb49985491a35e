"""lm-evaluation-harness on the in-memory model: per-item results equal our own computation."""

import json
import shutil

import pytest
import torch

from rocoft_llm.data.templates import get_template
from rocoft_llm.eval.generate import generate, prepare_tokenizer
from rocoft_llm.eval.harness import run_harness
from rocoft_llm.eval.scoring import protocol_option
from tests.helpers.paths import TINY


@pytest.mark.slow
def test_lm_eval_items_equal_our_computation(tmp_path):
    pytest.importorskip("lm_eval")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(TINY / "llama")).eval()
    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(TINY / "llama"))
    (tmp_path / "boolq").mkdir()
    shutil.copy(TINY / "data" / "truefalse" / "test.json", tmp_path / "boolq" / "test.json")
    records = json.loads((tmp_path / "boolq" / "test.json").read_text())[:12]
    summaries = run_harness(
        model, tok, ["boolq"], tmp_path / "out", {"model": "tiny"}, str(tmp_path), limit=12
    )
    assert [s["harness_task"] for s in summaries] == ["rocoft_boolq_loglik", "rocoft_boolq_gen"]
    samples = json.loads((tmp_path / "out" / "lm_eval_samples.json").read_text())

    # log-likelihood: our forward pass on the same token ids picks the same option for every item
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=1)
    prompt = get_template("llm_adapters").render_prompt
    loglik_items = sorted(samples["rocoft_boolq_loglik"], key=lambda s: s["doc_id"])
    assert len(loglik_items) == len(records)
    for item, rec in zip(loglik_items, records):
        scores = []
        for choice in ("true", "false"):
            ctx, cont = lm._encode_pair(prompt(rec["instruction"]) + "the correct answer is", " " + choice)
            ids = torch.tensor([ctx + cont])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
            scores.append(sum(logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont)))
        ours = int(["true", "false"][max(range(2), key=lambda i: scores[i])] == rec["answer"])
        assert ours == item["acc"], item["doc_id"]

    # generation: our batched greedy generation + protocol scorer gives the same per-item result
    gens = generate(
        model, tok, [prompt(r["instruction"]) for r in records], batch_size=4, num_beams=1, max_new_tokens=32
    )
    gen_items = sorted(
        (s for s in samples["rocoft_boolq_gen"] if s["filter"] == "protocol"), key=lambda s: s["doc_id"]
    )
    assert len(gen_items) == 12
    for item, rec, g in zip(gen_items, records, gens):
        assert item["resps"][0][0].split("### Instruction")[0].strip() == g.response
        assert int(protocol_option(g.response, "true|false", rec["answer"]).correct) == item["exact_match"]
