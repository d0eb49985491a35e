"""Regenerate the tiny default's bundled assets (deterministic; no downloads):

* ``data/train.json``: 384 LLM-Adapters-format records - small additions/subtractions answered
  "... The answer is N" and true/false comparisons answered "the correct answer is true|false";
* ``data/arith_train.json``: the arithmetic half of train.json (the demo's "pretraining" data);
* ``data/arith/test.json``, ``data/truefalse/test.json``: held-out test sets of the same kinds;
* ``llama/tokenizer.json`` (+ config files): a byte-level BPE (vocab 512, <pad>=0 <s>=1 </s>=2,
  BOS added) trained on that text, matching ``llama/config.json``.

    python recipes/tiny/make_assets.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


def arith(rng: random.Random) -> dict:
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    if rng.random() < 0.5:
        q, ans, expr = (
            f"Tom has {a} apples and gets {b} more. How many apples does he have?",
            a + b,
            f"{a} + {b}",
        )
    else:
        a, b = max(a, b), min(a, b)
        q, ans, expr = (
            f"Tom has {a} apples and gives away {b}. How many apples are left?",
            a - b,
            f"{a} - {b}",
        )
    return {
        "instruction": q,
        "input": "",
        "output": f"{expr} = {ans}. The answer is {ans}",
        "answer": str(ans),
    }


def truefalse(rng: random.Random) -> dict:
    a, b = rng.sample(range(1, 30), 2)
    truth = "true" if a > b else "false"
    return {
        "instruction": f"Please answer the following question with true or false, question: is {a} greater than "
        f"{b}?\n\nAnswer format: true/false",
        "input": "",
        "output": f"the correct answer is {truth}",
        "answer": truth,
    }


def make_data(rng: random.Random) -> tuple[list, list, list]:
    seen, train, tests = set(), [], {"arith": [], "truefalse": []}
    for kind, fn in (("arith", arith), ("truefalse", truefalse)):
        while len(tests[kind]) < 40:
            r = fn(rng)
            if r["instruction"] not in seen:
                seen.add(r["instruction"])
                tests[kind].append(r)
    while len(train) < 384:
        r = arith(rng) if len(train) % 2 == 0 else truefalse(rng)
        if r["instruction"] not in seen:
            seen.add(r["instruction"])
            train.append(r)
    return train, tests["arith"], tests["truefalse"]


def make_tokenizer(texts: list[str], out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "<s>", "</s>"],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", padding_side="left"
    ).save_pretrained(out)


def main() -> None:
    rng = random.Random(1234)
    train, arith_test, tf_test = make_data(rng)
    (HERE / "data").mkdir(exist_ok=True)
    arith_train = [r for r in train if not r["instruction"].startswith("Please answer")]
    for path, records in (
        (HERE / "data/train.json", train),
        (HERE / "data/arith_train.json", arith_train),
        (HERE / "data/arith/test.json", arith_test),
        (HERE / "data/truefalse/test.json", tf_test),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1) + "\n")
    texts = [PREAMBLE, "### Instruction:", "### Response:"] + [
        r["instruction"] + "\n" + r["output"] for r in train
    ] * 3
    make_tokenizer(texts, HERE / "llama")
    print(f"wrote {len(train)} training records, 2 x 40 test records and the tokenizer under {HERE}")


if __name__ == "__main__":
    main()
