"""A small byte-level BPE tokenizer trained in-process (no downloads)."""

from __future__ import annotations

from pathlib import Path

TEXT = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction:",
    "### Response:",
    "the correct answer is true",
    "the correct answer is false",
    "Please answer the following question with true or false.",
    "The answer is 42.",
    "Tom has 3 apples and buys 5 more. How many apples does he have now? 3 + 5 = 8.",
] * 20


def save_tiny_tokenizer(path: str | Path, vocab_size: int = 120) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXT, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    path = Path(path)
    fast.save_pretrained(path)
    return path
