"""What is particular to Gemma 3 in RoCoFT: its lm_head is tied to the embedding and stays frozen
unless ``also_train`` names the embedding (then both train, being one tensor), and its q/k norms and
four RMSNorms per layer stay frozen."""

import torch

from rocoft_llm import RoCoFTConfig, apply_rocoft, trainable_parameters
from tests.helpers.models import batch, tiny_model


def test_tied_head_and_norms_stay_frozen():
    model = apply_rocoft(tiny_model("gemma3_text"), RoCoFTConfig(mode="column", rank=2))
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    norms = {n for n in frozen if "norm" in n}
    # per layer: q_norm, k_norm, input, post-attention, pre- and post-feed-forward; and the final norm
    assert len(norms) == 2 * 6 + 1 and "model.layers.0.self_attn.q_norm.weight" in norms
    assert "model.embed_tokens.weight" in frozen and not model.lm_head.weight.requires_grad
    train = trainable_parameters(model)
    assert len(train) == 2 * 7 and all(n.endswith(".rocoft_slice") for n in train)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(train)


def test_also_train_embedding_trains_the_tied_head():
    model = apply_rocoft(
        tiny_model("gemma3_text"), RoCoFTConfig(mode="column", rank=2, also_train=["embed_tokens"])
    ).train()
    params = trainable_parameters(model)
    assert "model.embed_tokens.weight" in params and model.lm_head.weight.requires_grad
    head = model.lm_head.weight.detach().clone()
    b = batch(seed=1)
    model(**b, labels=b["input_ids"]).loss.backward()
    torch.optim.SGD(params.values(), lr=0.1).step()
    assert not torch.equal(model.lm_head.weight, head)  # the head moved with the embedding
    assert model.lm_head.weight is model.model.embed_tokens.weight
