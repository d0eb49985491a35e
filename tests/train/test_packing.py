"""Padding-free micro-batches (``train.packing``): a packed row gives the padded batch's loss and
RoCoFT slice gradients (Llama, GPT-J, Gemma-3 with sliding-window layers), no attention crosses an example boundary, a packed run ends
with the padded run's adapter, and BLOOM (whose attention ignores position ids) is refused."""

import pytest
import torch

from rocoft_llm import RoCoFTConfig, apply_rocoft, trainable_parameters
from rocoft_llm.architectures import packing_problem
from rocoft_llm.config.checks import check_recipe
from rocoft_llm.config.schema import Recipe
from rocoft_llm.errors import RoCoFTError
from rocoft_llm.train.backends import model_inputs
from rocoft_llm.train.batching import collate, collate_packed, pack_rows, target_tokens
from rocoft_llm.train.model_setup import target_mask, token_loss_sum
from rocoft_llm.train.run import train
from tests.helpers.models import VOCAB, tiny_model
from tests.helpers.recipes import assert_same_run, tiny_recipe

IGNORE = -100


def examples(seed: int = 0, lengths=(7, 12, 3, 9)) -> list[dict]:
    """Examples of different lengths, loss on response suffixes of different lengths."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, k in enumerate(lengths):
        ids = torch.randint(3, VOCAB, (k,), generator=g).tolist()
        prompt = [k // 2, 0, 1, k - 2][i % 4]  # example 1: every token a target, its first one too
        out.append({"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]})
    return out


def loss_and_grads(model, batch):
    model.zero_grad()
    batch = {**batch, "logits_to_keep": target_mask(batch["labels"])}
    loss = token_loss_sum(model(**model_inputs(batch)).logits, batch["labels"], batch["logits_to_keep"])
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in trainable_parameters(model).items()}


def test_packed_rows_layout_keeps_the_padded_target_tokens():
    exs = [
        {"input_ids": [1, 5, 6, 2], "labels": [-100, 5, 6, 2]},
        {"input_ids": [1, 7], "labels": [1, 7]},
        {"input_ids": [1, 8, 9], "labels": [1, 8, 9]},
    ]
    packed, padded = collate_packed(exs, pad_id=0), collate(exs, pad_id=0)
    # first-fit decreasing into rows as long as the longest example (3 + 2 > 4: three rows here)
    assert pack_rows([4, 2, 3]) == [[0], [2], [1]] and pack_rows([4, 2, 2, 3, 1]) == [[0], [3, 4], [1, 2]]
    assert packed["input_ids"].tolist() == [[1, 5, 6, 2], [1, 8, 9, 0], [1, 7, 0, 0]]
    # positions restart per example and per pad segment (its own sequence)
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 0, 1]]
    assert packed["labels"].tolist() == [[-100, 5, 6, 2], [-100, 8, 9, -100], [-100, 7, -100, -100]]
    assert "attention_mask" not in packed
    # two examples in one row: the second's first token is not predicted from the first's last one
    row = collate_packed([exs[0], exs[1], exs[1]], pad_id=0)
    assert row["input_ids"].tolist() == [[1, 5, 6, 2], [1, 7, 1, 7]]
    assert row["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 0, 1]]
    assert row["labels"].tolist() == [[-100, 5, 6, 2], [-100, 7, -100, 7]]
    assert int(target_mask(packed["labels"]).sum()) == int(target_mask(padded["labels"]).sum()) == 6
    assert sum(target_tokens(e["labels"]) for e in exs) == 6


@pytest.mark.parametrize("family", ["llama", "gptj", "gemma3_text"])
@pytest.mark.parametrize("mode", ["row", "column"])
def test_packed_loss_and_slice_gradients_equal_padded(family, mode):
    model = apply_rocoft(tiny_model(family), RoCoFTConfig(mode=mode, rank=2))
    exs = examples()
    padded_loss, padded_grads = loss_and_grads(model, collate(exs, pad_id=0))
    packed = collate_packed(exs, pad_id=0)
    assert packed["input_ids"].shape == (3, 12)  # rows [12], [9, 3], [7 + a pad segment of 5]
    packed_loss, packed_grads = loss_and_grads(model, packed)
    assert packing_problem(family, None) is None
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-5)
    assert padded_grads and set(packed_grads) == set(padded_grads)
    for name, grad in padded_grads.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", ["llama", "gptj", "gemma3_text"])
def test_changing_one_packed_example_does_not_move_the_others_logits(family):
    model = tiny_model(family)
    exs = examples(lengths=(9, 5, 4))  # rows: [ex0], [ex1, ex2]
    changed = [exs[0], {"input_ids": [7, 8, 9, 10, 11], "labels": [IGNORE] * 5}, exs[2]]

    def logits_of(batch_examples):
        with torch.no_grad():
            logits = model(**model_inputs(collate_packed(batch_examples, pad_id=0))).logits
        return logits[0, :9], logits[1, :5], logits[1, 5:]

    before, after = logits_of(exs), logits_of(changed)
    torch.testing.assert_close(after[2], before[2], rtol=1e-5, atol=1e-5)  # behind the changed one, same row
    torch.testing.assert_close(after[0], before[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after[1], before[1], atol=1e-3)  # the changed example did change
    # and each packed example sees what it sees alone
    with torch.no_grad():
        alone = model(**model_inputs(collate([exs[2]], pad_id=0))).logits[0]
    torch.testing.assert_close(before[2], alone, rtol=1e-5, atol=1e-5)


def test_gemma3_sliding_window_is_active_where_packed_and_padded_agree():
    """The Gemma-3 cases above compare packed with padded rows while the tiny model's sliding window
    (4 tokens) is shorter than the examples: the window changes the logits, so both paths apply it."""
    model = tiny_model("gemma3_text")
    wide = tiny_model("gemma3_text")
    wide.config.sliding_window = 64
    exs = examples(lengths=(9, 5, 4))
    with torch.no_grad():
        narrow_packed = model(**model_inputs(collate_packed(exs, pad_id=0))).logits[0, :9]
        wide_packed = wide(**model_inputs(collate_packed(exs, pad_id=0))).logits[0, :9]
    torch.testing.assert_close(narrow_packed[:4], wide_packed[:4], rtol=1e-5, atol=1e-5)  # inside the window
    assert not torch.allclose(narrow_packed[4:], wide_packed[4:], atol=1e-3)
    assert packing_problem(model.config.model_type, "sdpa") is None


def test_packed_bloom_would_attend_across_examples_so_it_is_refused():
    """The reason for the refusal, checked in the installed transformers: BLOOM ignores position ids,
    so the second packed example's logits depend on the first. Should transformers learn packed
    BLOOM, this test fails and the refusal can be lifted."""
    model = tiny_model("bloom")
    exs = examples(lengths=(6, 5, 11))  # rows: [ex2], [ex0, ex1]
    with torch.no_grad():
        packed = model(**model_inputs(collate_packed(exs, pad_id=0))).logits[1, 6:]
        alone = model(**model_inputs(collate([exs[1]], pad_id=0))).logits[0]
    assert not torch.allclose(packed, alone, atol=1e-3)
    problem = packing_problem("bloom", None)
    assert "train.packing: true cannot be used with model_type 'bloom'" in problem
    assert "set train.packing: false" in problem


def test_validate_refuses_packing_for_bloom_unknown_families_and_kernels(tmp_path):
    def problems(name, **model):
        recipe = Recipe.model_validate(
            {
                "model": {"name_or_path": name, **model},
                "output": {"dir": str(tmp_path / "out")},
                "train": {"packing": True},
            }
        )
        return [p for p in check_recipe(recipe, {}).problems if "packing" in p]

    assert problems("EleutherAI/gpt-j-6b") == [] and problems("meta-llama/Llama-2-7b-hf") == []
    (bloom,) = problems("bigscience/bloomz-7b1")
    assert (
        "model_type 'bloom'" in bloom and "bigscience/bloomz-7b1" in bloom and "train.packing: false" in bloom
    )
    (kernel,) = problems("meta-llama/Llama-2-7b-hf", attn_implementation="flash_attention_2")
    assert "'flash_attention_2'" in kernel and "model.attn_implementation" in kernel and "sdpa" in kernel
    assert "not in the table" in packing_problem("gpt2", None)


def test_packed_run_ends_with_the_padded_runs_adapter(tmp_path):
    """Same examples per step, accumulation over 2 micro-batches: losses and slices as padded."""
    padded = train(str(tiny_recipe(tmp_path, "padded")))
    packed = train(str(tiny_recipe(tmp_path, "packed", train={"packing": True})))
    assert_same_run(packed, padded, tol=1e-4)


def test_train_refuses_packing_for_a_model_that_cannot_pack(tmp_path, monkeypatch):
    """The backstop when `validate` could not read the config: the loaded model's type decides."""
    import rocoft_llm.train.run as run

    monkeypatch.setattr(run, "packing_problem", lambda model_type, kernel: f"refused {model_type}")
    with pytest.raises(RoCoFTError, match="refused llama"):
        train(str(tiny_recipe(tmp_path, "r", train={"packing": True})))
