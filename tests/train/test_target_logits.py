"""The loss computed with the vocabulary projection only at target positions (``logits_to_keep``
= :func:`target_mask`) equals the full-logits loss, value and gradients, for every family."""

import pytest
import torch

from rocoft_llm import RoCoFTConfig, apply_rocoft, trainable_parameters
from rocoft_llm.train.model_setup import target_mask, token_loss_sum
from tests.helpers.models import ARCHS, tiny_model


@pytest.mark.parametrize("family", ARCHS)
def test_target_only_logits_give_the_same_loss_and_gradients(family):
    model = apply_rocoft(tiny_model(family).double(), RoCoFTConfig(mode="row", rank=2))
    torch.manual_seed(0)
    ids = torch.randint(3, 100, (3, 12))
    attention = torch.ones_like(ids)
    attention[2, 9:] = 0  # a right-padded row
    labels = torch.full_like(ids, -100)
    labels[0, 8:] = ids[0, 8:]  # response-only targets of different lengths
    labels[1, 5:] = ids[1, 5:]
    labels[2, 6:9] = ids[2, 6:9]
    results = []
    for mask in (None, target_mask(labels)):
        model.zero_grad()
        kwargs = {} if mask is None else {"logits_to_keep": mask}
        logits = model(input_ids=ids, attention_mask=attention, **kwargs).logits
        loss = token_loss_sum(logits, labels, mask)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in trainable_parameters(model).items()}))
    (full, g_full), (kept, g_kept) = results
    assert int(target_mask(labels).sum()) == 4 + 7 + 3  # positions whose next token is a target
    # the slices are fp32 masters, so the forward runs in fp32: only rounding may differ (other GEMM shapes)
    torch.testing.assert_close(kept, full, rtol=1e-6, atol=1e-5)
    for name in g_full:
        torch.testing.assert_close(g_kept[name], g_full[name], rtol=1e-4, atol=1e-5)
