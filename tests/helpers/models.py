"""Tiny Llama / BLOOM / GPT-J / Gemma-3 models built in-process from configs (no downloads)."""

from __future__ import annotations

import torch
from transformers import (
    BloomConfig,
    BloomForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPTJConfig,
    GPTJForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
)

ARCHS = ("llama", "bloom", "gptj", "gemma3_text")  # each a model_type of the table
VOCAB = 320  # >= the tiny tokenizer (259)


def tiny_config(arch: str):
    if arch == "llama":
        return LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            tie_word_embeddings=False,
        )
    if arch == "bloom":
        return BloomConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            n_layer=2,
            n_head=4,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        )
    if arch == "gptj":
        return GPTJConfig(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=2,
            n_head=4,
            rotary_dim=4,
            n_positions=64,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
            tie_word_embeddings=False,
        )
    if arch == "gemma3_text":
        # grouped-query attention, q/k norms, tied embeddings; a sliding window (4) shorter than the
        # test sequences, so that masking differences between layer types show
        return Gemma3TextConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=64,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention"],
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            tie_word_embeddings=True,
        )
    raise ValueError(arch)


def tiny_model(arch: str, seed: int = 0, dtype=torch.float32):
    torch.manual_seed(seed)
    cls = {
        "llama": LlamaForCausalLM,
        "bloom": BloomForCausalLM,
        "gptj": GPTJForCausalLM,
        "gemma3_text": Gemma3ForCausalLM,
    }[arch]
    model = cls(tiny_config(arch))
    # Random (non-zero) biases so bias paths are exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.02)
    return model.to(dtype).eval()


def batch(seed: int = 0, bsz: int = 2, seq: int = 10, pad: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (bsz, seq), generator=g)
    mask = torch.ones_like(ids)
    if pad:
        mask[0, :pad] = 0
        ids[0, :pad] = 0
    return {"input_ids": ids, "attention_mask": mask}


def merged_llama(tmp_path):
    """A RoCoFT-updated tiny Llama (the bundled tokenizer; grouped-query attention, so q and k
    permute differently in GGUF), merged into ``tmp_path/merged``: the GGUF export tests' model."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter, trainable_parameters
    from rocoft_llm.rocoft.merge_dir import merge_to_directory

    from .paths import TINY

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


#: every RoCoFT mode; ``entries`` trains this fraction of each tiny weight in the tests
ROCOFT_MODES = ("row", "column", "row_column", "entries")
TEST_DENSITY = 0.05


def mode_settings(mode: str) -> dict:
    """RoCoFTConfig keyword arguments of ``mode`` (entries needs a density and random selection)."""
    return (
        {"mode": mode, "density": TEST_DENSITY, "selection": "random"}
        if mode == "entries"
        else {"mode": mode}
    )
