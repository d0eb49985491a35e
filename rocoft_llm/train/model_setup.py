"""Model for a run: load (optionally partitioned with ZeRO-3 zero.Init), activation checkpointing,
then the recipe's method (:mod:`rocoft_llm.methods`: RoCoFT, LoRA, full finetuning, or a registered
one), so every method shares data, loop, logging and evaluation."""

from __future__ import annotations

import logging

import torch

from ..methods import get_method
from ..model_loading import load_model
from ..rocoft.apply import trainable_parameters
from ..rocoft.gather import real_numel

log = logging.getLogger("rocoft_llm")


def build_model(recipe, calibration=None, ds_config: dict | None = None):
    """The model with its method applied, trainable parameters marked (not yet wrapped/sharded)."""
    m = recipe.model
    keep_alive = None
    if ds_config is not None and recipe.dist.zero_init:
        from transformers.integrations import HfDeepSpeedConfig

        keep_alive = HfDeepSpeedConfig(ds_config)  # makes from_pretrained load partitioned (zero.Init)
    model = load_model(
        m.name_or_path,
        dtype=m.dtype,
        random_init=m.random_init,
        trust_remote_code=m.trust_remote_code,
        dropout=m.dropout,
        revision=m.revision,
        seed=recipe.train.seed,
        attn_implementation=m.attn_implementation,
        quantize=m.quantize,
    )
    model._rocoft_ds_config_ref = keep_alive
    if recipe.train.gradient_checkpointing:
        enable = (
            getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        )
        enable({"use_reentrant": False})
        model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still get input grads
    model = get_method(recipe.method).prepare(model, recipe, calibration)
    params = trainable_parameters(model)
    n_train = sum(real_numel(p) for p in params.values())
    n_total = sum(real_numel(p) for p in model.parameters())
    log.info(
        "method %s: %s trainable of %s parameters (%.4f%%)",
        recipe.method,
        f"{n_train:,}",
        f"{n_total:,}",
        100 * n_train / max(n_total, 1),
    )
    model.train()
    return model, n_train, n_total


def calibration_from(dataset, plan, pad_id: int, n_batches: int):
    """The first training micro-batches (rank-independent), for Wanda-scored selection."""
    from ..data.collate import collate

    for step in range(min(n_batches, plan.steps_per_epoch)):
        idx = plan.global_indices(step)[: plan.micro_batch]
        batch = collate([dataset[i] for i in idx], pad_id)
        yield {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def target_mask(labels: torch.Tensor) -> torch.Tensor:
    """(batch, seq) bool: positions whose NEXT token is a target. Passed as ``logits_to_keep`` so the
    vocabulary projection runs only where the loss needs it - with the loss on responses only, a
    few tokens per example instead of every position (SmolLM2's 49k-token head was ~2/3 of a forward)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != -100
    return mask


def token_loss_sum(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum of next-token cross-entropies over target tokens (fp32). ``logits``: (batch, seq, vocab), or
    (targets, vocab) computed only at ``mask`` (:func:`target_mask`) - the same sum either way."""
    if mask is not None:
        targets = labels[:, 1:][mask[:, :-1]].to(logits.device)
        return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        labels[:, 1:].reshape(-1).to(logits.device),
        ignore_index=-100,
        reduction="sum",
    )
