"""Records per second of `prepare` on a 170k-record commonsense mixture (LLM-Adapters format).

The mixture is synthesised by repeating the real LLM-Adapters commonsense test records (from
../shared/data/llm_adapters or --llm-adapters-dir) up to --records; the tokenizer is a Llama-style
sentencepiece BPE trained on that text (no download). Reports the whole `prepare` wall time
(read, validate, contamination/quirk reports, tokenize, save; target: < 3 minutes on 2 cores).

    python bench/data_throughput.py --num-proc 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

TASK_DIRS = ["boolq", "piqa", "social_i_qa", "winogrande", "ARC-Easy", "ARC-Challenge", "openbookqa"]


def build_tokenizer(texts: list[str], workdir: Path, vocab: int) -> Path:
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(texts))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(workdir / "sp"),
        vocab_size=vocab,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
        minloglevel=2,
    )
    tok_dir = workdir / "tokenizer"
    tok_dir.mkdir()
    shutil.copy(workdir / "sp.model", tok_dir / "tokenizer.model")
    LlamaTokenizer.from_pretrained(str(tok_dir), add_bos_token=True).save_pretrained(tok_dir)
    return tok_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--llm-adapters-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/llm_adapters")
    )
    ap.add_argument("--records", type=int, default=170_000)
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=8000)
    args = ap.parse_args()

    from rocoft_llm.data.prepare import PrepareOptions, prepare

    real = []
    for d in TASK_DIRS:
        real.extend(json.loads((Path(args.llm_adapters_dir) / d / "test.json").read_text()))
    mixture = (real * (args.records // len(real) + 1))[: args.records]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "commonsense_170k.json"
        data.write_text(json.dumps(mixture))
        tok = build_tokenizer([r["instruction"] + " " + r["output"] for r in real[:20000]], tmp, args.vocab)
        opts = PrepareOptions(
            datasets=[str(data)], tokenizer_path=str(tok), num_proc=args.num_proc, cutoff_len=256
        )
        t0 = time.perf_counter()
        _, manifest = prepare(opts, out=tmp / "out", progress=False)
        total = time.perf_counter() - t0
    n = manifest["examples"]
    print(
        f"# {n:,} records ({len(real):,} real LLM-Adapters commonsense records repeated), num_proc {args.num_proc}, "
        f"sentencepiece BPE vocab {args.vocab}"
    )
    print("| stage | seconds | records/s |")
    print("|---|---:|---:|")
    print(f"| prepare end to end (read, validate, report, tokenize, save) | {total:.1f} | {n / total:,.0f} |")
    print(f"| mean tokens per record | {manifest['token_lengths']['mean']} | |")
    print(f"target < 180 s: {'met' if total < 180 else 'MISSED'}")


if __name__ == "__main__":
    main()
