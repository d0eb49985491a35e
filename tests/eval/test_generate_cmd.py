"""`rocoft-llm generate`: the same reply from a run, its peft export and its merged model, equal to what
`eval` generates for the same instruction (same rendering, same decoding); the streamed text never
shows the stop text; new_tokens stops at the first EOS; prompts from stdin; sampling is seeded."""

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from rocoft_llm.cli import main
from rocoft_llm.eval.generate import end_token_ids, generate, prepare_tokenizer, reply_tokens
from rocoft_llm.eval.identity import load_for_eval
from rocoft_llm.eval.interactive import held_back, stop_streamer
from rocoft_llm.train.run import train
from tests.helpers.recipes import TINY, tiny_recipe

QUESTION = "is 7 greater than 3?"


def cli(*args, input=None):
    result = CliRunner().invoke(main, [str(a) for a in args], input=input)
    assert result.exit_code == 0, result.output
    return result


def test_streamer_hides_the_stop_text_and_outer_whitespace():
    shown = []
    streamer = stop_streamer(AutoTokenizer.from_pretrained(TINY / "llama"), shown.append)
    for piece in ["  The answer", " is 4 ##", "# and", " 5.\n", "\n### Instr", "uction: more", " text"]:
        streamer.on_finalized_text(piece)
    streamer.on_finalized_text("", stream_end=True)
    assert "".join(shown) == "The answer is 4 ### and 5."
    assert held_back("ab ##") == 3 and held_back("ab") == 0


def test_new_tokens_stop_at_the_first_end_token():
    assert reply_tokens([5, 6, 2, 2, 2], ends={2}, pad=2) == [5, 6, 2]  # pad == eos: pads are not the reply
    assert reply_tokens([5, 6, 0, 0], ends={2}, pad=0) == [5, 6]
    assert reply_tokens([5, 2, 7, 0], ends={2}, pad=0) == [5, 2]
    assert reply_tokens([5, 106, 7, 1], ends={1, 106}, pad=0) == [5, 106]  # an end-of-turn token


def test_a_chat_models_end_of_turn_token_ends_the_reply():
    """Gemma-3 and Llama-3 end a turn with a token that is not the tokenizer's EOS; their generation
    config lists it. Here the tiny model's config names token 7 too: generation stops at it."""
    tok = AutoTokenizer.from_pretrained(TINY / "llama")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(TINY / "llama")).eval()
    prepare_tokenizer(tok)
    free = generate(model, tok, ["hello"], batch_size=1, num_beams=1, max_new_tokens=12)[0]
    enc = tok(["hello"], return_tensors="pt")
    first = model.generate(**enc, do_sample=False, max_new_tokens=1, pad_token_id=tok.pad_token_id)[0, -1]
    assert end_token_ids(model, tok) == [tok.eos_token_id]
    assert int(first) != tok.eos_token_id and free.new_tokens > 1  # without it the reply goes on
    model.generation_config.eos_token_id = [tok.eos_token_id, int(first)]
    assert end_token_ids(model, tok) == [tok.eos_token_id, int(first)]
    stopped = generate(model, tok, ["hello"], batch_size=1, num_beams=1, max_new_tokens=12)[0]
    assert stopped.new_tokens == 1 and not stopped.hit_max_new_tokens


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A RoCoFT run on a saved tiny base (export-peft needs base weights on disk), its peft export and
    its merged model."""
    tmp = tmp_path_factory.mktemp("gen")
    torch.manual_seed(0)
    base = tmp / "base"
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(TINY / "llama")).save_pretrained(base)
    AutoTokenizer.from_pretrained(TINY / "llama").save_pretrained(base)
    model = {"name_or_path": str(base), "random_init": False}
    run = train(str(tiny_recipe(tmp, "run", model=model, train={"lr": 0.1})))
    cli("export-peft", run, "--out", tmp / "peft")
    cli("merge", "--base", base, "--adapter", run / "adapter", "--out", tmp / "merged")
    return {"base": base, "run": run, "peft": tmp / "peft", "merged": tmp / "merged"}


@pytest.mark.slow
def test_run_peft_export_and_merged_model_give_eval_s_reply(trained):
    args = ["--prompt", QUESTION, "--max-new-tokens", "12"]
    from_run = cli("generate", "--run", trained["run"], *args)
    from_peft = cli("generate", "--model", trained["base"], "--adapter", trained["peft"], *args)
    from_merged = cli("generate", "--model", trained["merged"], "--template", "llm_adapters", *args)
    reply = from_run.stdout
    assert reply.strip() and from_peft.stdout == reply and from_merged.stdout == reply
    assert "new tokens" in from_run.stderr and "new tokens" not in reply

    # what eval generates for the same instruction with num_beams 1 (the run's template: llm_adapters)
    net, tok, _, _ = load_for_eval(run=str(trained["run"]))
    prepare_tokenizer(tok)
    from rocoft_llm.eval.generate import render_prompts

    prompts = render_prompts("llm_adapters", [{"instruction": QUESTION}])
    (want,) = generate(net, tok, prompts, batch_size=1, num_beams=1, max_new_tokens=12)
    assert reply == want.response + "\n"


@pytest.mark.slow
def test_prompts_from_stdin_and_seeded_sampling(trained):
    lines = cli("generate", "--run", trained["run"], "--max-new-tokens", "6", input="one\n\ntwo\n")
    assert lines.stderr.count("new tokens,") == 2 and len(lines.stdout.splitlines()) == 2
    shown = cli(
        "generate", "--run", trained["run"], "--prompt", "x", "--max-new-tokens", "4", "--show-prompt"
    )
    assert "### Instruction:\nx\n\n### Response:\n" in shown.stderr
    sample = ["--prompt", QUESTION, "--max-new-tokens", "8", "--temperature", "1.5", "--top-p", "0.9"]
    first = cli("generate", "--run", trained["run"], *sample, "--seed", "3")
    assert cli("generate", "--run", trained["run"], *sample, "--seed", "3").stdout == first.stdout
    assert "temperature 1.5" in first.stderr


def test_generate_needs_a_model(tmp_path):
    result = CliRunner().invoke(main, ["generate", "--prompt", "hi"])
    assert result.exit_code == 2 and "--run RUN, or --model" in result.output
    result = CliRunner().invoke(main, ["generate", "--model", "x", "--top-p", "0"])
    assert result.exit_code == 2 and "top-p" in result.output
    (tmp_path / "empty.txt").write_text("\n")
    result = CliRunner().invoke(
        main, ["generate", "--model", "x", "--prompt-file", str(tmp_path / "empty.txt")]
    )
    assert result.exit_code == 2 and "is empty" in result.output


@pytest.mark.slow
def test_chat_template_renders_as_eval_renders(trained, tmp_path):
    from tests.helpers.chat_templates import TINY_CHAT_TEMPLATE

    (tmp_path / "chat.jinja").write_text(TINY_CHAT_TEMPLATE)
    args = ["--template", "chat", "--chat-template", tmp_path / "chat.jinja", "--show-prompt"]
    shown = cli("generate", "--run", trained["run"], *args, "--prompt", "2 + 2?", "--max-new-tokens", "3")
    assert "### user:\n2 + 2?\n### Response:\n" in shown.stderr and "template chat" in shown.stderr
