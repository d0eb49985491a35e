"""Small byte-level BPE tokenizers trained in-process (no downloads), with chat templates.

``save_tiny_tokenizer``: special tokens ``<pad> <s> </s>`` and a small chat template that marks the
assistant turns with ``{% generation %}`` (so transformers' own assistant mask can be compared with
rocoft-llm's prefix mask). ``save_chatml_tokenizer``: ``<|im_start|>`` / ``<|im_end|>`` special tokens
(EOS = ``<|im_end|>``, as SmolLM2's) and SmolLM2-135M-Instruct's chat template (tests/helpers/chat_templates.py).
``save_gemma3_tokenizer``: Gemma's special tokens (``<pad> <eos> <bos>``, turns opened by
``<start_of_turn>`` and closed by ``<end_of_turn>``, which is not EOS) and Gemma-3's chat template.
"""

from __future__ import annotations

from pathlib import Path

from .chat_templates import GEMMA3_CHAT_TEMPLATE, SMOLLM2_CHAT_TEMPLATE, TINY_CHAT_TEMPLATE

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


def _train(path: str | Path, vocab_size: int, special: list[str], **tokens):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **tokens)


def save_tiny_tokenizer(
    path: str | Path, vocab_size: int = 120, chat_template: str | None = TINY_CHAT_TEMPLATE
) -> Path:
    fast = _train(
        path, vocab_size, ["<pad>", "<s>", "</s>"], pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    if chat_template:
        fast.chat_template = chat_template
    path = Path(path)
    fast.save_pretrained(path)
    return path


def save_chatml_tokenizer(path: str | Path, vocab_size: int = 140) -> Path:
    """A tokenizer shaped like SmolLM2's (ChatML special tokens, EOS = pad = ``<|im_end|>``) with its template."""
    fast = _train(
        path,
        vocab_size,
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    fast.chat_template = SMOLLM2_CHAT_TEMPLATE
    path = Path(path)
    fast.save_pretrained(path)
    return path


def save_gemma3_tokenizer(path: str | Path, vocab_size: int = 140) -> Path:
    """A tokenizer shaped like Gemma-3's (pad 0, eos 1, bos 2, then the turn markers) with its template."""
    fast = _train(
        path,
        vocab_size,
        ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
    )
    fast.chat_template = GEMMA3_CHAT_TEMPLATE
    path = Path(path)
    fast.save_pretrained(path)
    return path
