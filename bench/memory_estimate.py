"""The memory model at paper scale, and a check of it on a real device.

    python bench/memory_estimate.py                       # the table: Llama-2-7B / 13B, {bf16, NF4} x
                                                          # {rocoft, lora}, 1 x 1024 tokens (no device)
    python bench/memory_estimate.py --check --device cuda --layers 4
                                                          # measured against the estimate (GPU kit)
    python bench/memory_estimate.py --check --device cpu --shape tiny    # the same on CPU, in seconds

The table is ``rocoft_llm.config.memory_estimate`` (what ``rocoft-llm validate`` prints) on the
paper's recipes with one GPU, no sharding, and ``train.micro_batch_size`` x ``data.cutoff_len`` set
to the asked batch x sequence. RoCoFT is r=3 on all seven projections, rows (the recipe's mode) and
columns (the package's default); LoRA
is r=8 on the same projections with dropout 0.05 (peft's QLoRA path on NF4: fp32 norms, embeddings
and hidden states).

``--check`` builds the recipes' model with ``--layers`` decoder layers of the shape (random weights
saved once to a temporary directory and loaded through the product's ``build_model``, so NF4 takes
transformers' bitsandbytes path), runs two training steps (forward, backward, AdamW) on one
micro-batch and prints, per method and checkpointing setting, the estimate against the measurement:
``static`` = memory allocated after building (frozen weights + trainable values) and ``peak`` =
``torch.cuda.max_memory_allocated`` over the steps (on CPU: the peak of the storages created,
tests/helpers/memory.py, plus the static bytes).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES = {"llama2-7b": "meta-llama/Llama-2-7b-hf", "llama2-13b": "meta-llama/Llama-2-13b-hf"}
TINY = {
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
}
METHODS = ("rocoft", "lora")
GIB, MIB = 2**30, 2**20


def recipe_for(
    model: str,
    method: str,
    dtype: str,
    quantize: str | None,
    batch: int,
    seq: int,
    ck: bool,
    mode: str = "row",
):
    """The paper recipe (llama2-7b-math) on one GPU with the asked model, method (RoCoFT ``mode``)
    and storage."""
    from rocoft_llm.config.loader import load_recipe_raw

    overrides = [
        f"model.name_or_path={model}",
        f"model.dtype={dtype}",
        f"method={method}",
        "dist.backend=none",
        "dist.zero_stage=null",
        f"train.micro_batch_size={batch}",
        f"train.global_batch_size={batch}",
        f"data.cutoff_len={seq}",
        f"train.gradient_checkpointing={str(ck).lower()}",
        "model.dropout=null",
    ]
    overrides.append(f"rocoft.mode={mode}" if method == "rocoft" else "rocoft=null")
    if quantize:
        overrides.append(f"model.quantize={quantize}")
    recipe, _, problems = load_recipe_raw(REPO / "rocoft_llm" / "recipes" / "llama2-7b-math.yaml", overrides)
    if problems:
        raise SystemExit("; ".join(problems))
    return recipe


def table(batch: int, seq: int) -> list[str]:
    from rocoft_llm.config.memory_estimate import estimate, setup_from_recipe
    from rocoft_llm.config.model_shapes import resolve_config

    head = "| model | base | method | frozen | trainable | optimizer | gradients | activations | act. checkpointed | total | total checkpointed |"
    lines = [head, "|" + "---|" * 3 + "---:|" * 8]
    for name, model in SHAPES.items():
        config, _ = resolve_config(model)
        for base, dtype, quantize in (("bf16", "bfloat16", None), ("NF4", "bfloat16", "nf4")):
            for method, mode in (("rocoft", "row"), ("rocoft", "column"), ("lora", None)):
                r = recipe_for(model, method, dtype, quantize, batch, seq, False, mode)
                setup = setup_from_recipe(r, config)
                e, c = estimate(config, setup), estimate(config, replace(setup, checkpointing=True))
                cells = [e.frozen, e.trainable, e.optimizer, e.gradients, e.activations, c.activations]
                cells += [e.total, c.total]
                lines.append(
                    f"| {name} | {base} | {method}{' ' + mode if mode else ''} | "
                    + " | ".join(f"{n / GIB:.2f}" for n in cells)
                    + " |"
                )
    return lines


def _model_dir(tmp: Path, shape: str, layers: int | None, device: str) -> tuple[Path, object]:
    import torch
    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

    from rocoft_llm.config.model_shapes import resolve_config

    if shape == "tiny":
        config = LlamaConfig(**TINY, tie_word_embeddings=False)
    else:
        config, _ = resolve_config(SHAPES[shape])
        config = AutoConfig.for_model(
            "llama", **{**config.to_dict(), "model_type": None} | {"model_type": "llama"}
        )
    if layers:
        config.num_hidden_layers = layers
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(tmp / "model")
    del model
    return tmp / "model", config


def check(args) -> list[str]:
    from rocoft_llm.config.memory_estimate import estimate, setup_from_recipe

    rows = [
        "| base | method | checkpointing | static est. MiB | static meas. MiB | peak est. MiB | peak meas. MiB "
        "| meas./est. | step s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path, config = _model_dir(Path(tmp), args.shape, args.layers, args.device)
        for quantize in args.quantize:
            for method in METHODS:
                for ck in (False, True):
                    r = recipe_for(str(path), method, "bfloat16", quantize, args.batch, args.seq, ck)
                    est = estimate(config, replace(setup_from_recipe(r, config), device=args.device))
                    try:
                        rows.append(_measure(r, est, config, args, ck, quantize, method))
                    except Exception as e:  # noqa: BLE001 - one failing setting must not cost the others
                        rows.append(
                            f"| {quantize or 'bf16'} | {method} | {'on' if ck else 'off'} | failed: {e!r:.200} |"
                        )
                    print(rows[-1], flush=True)
                    gc.collect()
    return rows


def _measure(r, est, config, args, ck: bool, quantize, method) -> str:
    """One row of the check: build the recipe's model, two training steps, static and peak bytes."""
    import torch

    from rocoft_llm.rocoft.apply import trainable_parameters
    from rocoft_llm.train.model_setup import build_model
    from tests.helpers.memory import LiveStorages, quant_state_tensors, storage_bytes, training_forward

    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
    model, _, _ = build_model(r)
    model.to(args.device).train()
    params = trainable_parameters(model)
    optimizer = torch.optim.AdamW(params.values())
    ids = torch.randint(3, config.vocab_size, (args.batch, args.seq), device=args.device)

    def steps():
        for _ in range(2):
            training_forward(model, ids).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    if cuda:
        static = torch.cuda.memory_allocated() - before
        torch.cuda.reset_peak_memory_stats()
        steps()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        static = storage_bytes([*model.parameters(), *quant_state_tensors(model)])
        with LiveStorages(track_peak=True) as live:
            steps()
        peak = static + live.peak
    seconds = (time.perf_counter() - t0) / 2
    static_est = est.frozen + est.trainable
    return (
        f"| {quantize or 'bf16'} | {method} | {'on' if ck else 'off'} | {static_est / MIB:.1f} | "
        f"{static / MIB:.1f} | {est.total / MIB:.1f} | {peak / MIB:.1f} | {peak / est.total:.2f} | {seconds:.2f} |"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--check", action="store_true", help="measure on --device instead of printing the table")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shape", choices=[*SHAPES, "tiny"], default="llama2-7b")
    ap.add_argument("--layers", type=int, help="decoder layers of the checked model (default: the shape's)")
    ap.add_argument(
        "--quantize", nargs="+", default=["nf4"], help="storages to check: nf4, fp4, int8, none (bf16)"
    )
    args = ap.parse_args()
    args.quantize = [None if q == "none" else q for q in args.quantize]
    lines = check(args) if args.check else table(args.batch, args.seq)
    if not args.check:
        print(f"memory per GPU, GiB, micro-batch {args.batch} x {args.seq} tokens, one GPU")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
