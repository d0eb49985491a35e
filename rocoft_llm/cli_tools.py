"""``rocoft-llm`` commands that take no recipe options: ``doctor``, ``merge``, ``export-peft`` and ``recipes``
(registered on the group in cli.py)."""

from __future__ import annotations

import sys

import click


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm doctor --out-dir runs/x
  torchrun --nproc-per-node 8 -m rocoft_llm.cli doctor --out-dir /shared/runs/x     # every rank
"""
)
@click.option(
    "--out-dir", required=True, help="The run's output directory (checked for sharing and free space)."
)
@click.option(
    "--timeout", default=120, show_default=True, type=click.IntRange(min=5), help="All-reduce timeout (s)."
)
@click.option("--min-free-gib", default=1.0, show_default=True, type=float)
def doctor(out_dir, timeout, min_free_gib) -> None:
    """Check versions, GPUs, an all-reduce over all ranks, the shared output dir and free disk."""
    from .distributed import is_main, shutdown_distributed
    from .doctor import run_doctor

    results = run_doctor(out_dir, timeout, min_free_gib)
    if is_main():
        for name, ok, detail in results:
            click.echo(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")
        click.echo("doctor: all checks passed" if all(ok for _, ok, _ in results) else "doctor: FAILED")
    if all(ok for name, ok, _ in results if name == "all-reduce"):  # a broken group would hang the barrier
        shutdown_distributed()
    if not all(ok for _, ok, _ in results):
        sys.exit(1)


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm merge --base meta-llama/Llama-2-7b-hf --adapter runs/llama2-7b-math/adapter --out merged/llama2-7b-math
  python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('merged/llama2-7b-math')"
"""
)
@click.option("--base", required=True, help="Base model directory (safetensors) or Hub id.")
@click.option(
    "--adapter", required=True, type=click.Path(exists=True, file_okay=False), help="Adapter directory."
)
@click.option(
    "--out", required=True, type=click.Path(), help="Directory for the merged model (must not exist)."
)
@click.option(
    "--overwrite", is_flag=True, help="Replace an existing --out directory once the new one is complete."
)
def merge(base: str, adapter: str, out: str, overwrite: bool) -> None:
    """Write BASE + ADAPTER as a plain HF model directory, streaming one safetensors shard at a time."""
    from .rocoft.merge_dir import merge_to_directory

    path = merge_to_directory(base, adapter, out, overwrite=overwrite)
    click.echo(f"merged model written to {path} (loads with AutoModelForCausalLM.from_pretrained)")


@click.command(
    "export-peft",
    epilog="""
\b
Examples:
  rocoft-llm export-peft runs/llama2-7b-math --out exports/llama2-7b-math-lora
  rocoft-llm export-peft runs/x/adapter --base path/to/base --out exports/x --pad-rank 8
  lm_eval --model hf --model_args pretrained=path/to/base,peft=exports/x --tasks boolq
""",
)
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(), help="Directory for the peft LoRA adapter.")
@click.option(
    "--base",
    default=None,
    help="Base model directory (safetensors) or Hub id; default: the run's model, else the adapter's base_model.",
)
@click.option(
    "--pad-rank",
    type=click.IntRange(min=1),
    default=None,
    help="Pad every module to this LoRA rank with zeros (output unchanged), e.g. 8 or 16 for vLLM.",
)
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out once the new export is complete.")
def export_peft(source: str, out: str, base: str | None, pad_rank: int | None, overwrite: bool) -> None:
    """Export the RoCoFT adapter of SOURCE (a run or adapter directory) as an exact peft LoRA directory."""
    from .models.gguf_import import materialize_model
    from .rocoft.adapter import read_adapter_config
    from .rocoft.peft_export import export_peft as run_export
    from .rocoft.peft_export import peft_config_summary, resolve_export_source

    if base is None:  # the run's model, else the adapter's; a .gguf base is read from its converted copy
        adapter_dir, base = resolve_export_source(source)
        base = base or read_adapter_config(adapter_dir).get("base_model")
    path = run_export(
        source, out, base=materialize_model(base) if base else None, pad_rank=pad_rank, overwrite=overwrite
    )
    click.echo(f"peft LoRA written to {path} ({peft_config_summary(path)})")


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm recipes                          # list the shipped recipes
  rocoft-llm recipes --copy .                 # write them (and the tiny demo's assets) to ./recipes
  cd . && rocoft-llm train recipes/tiny-llama-rows.yaml
"""
)
@click.option(
    "--copy",
    "copy_to",
    type=click.Path(file_okay=False),
    help="Copy the shipped recipes and the tiny assets to DIR/recipes (paths in them are relative to DIR).",
)
@click.option("--overwrite", is_flag=True, help="Let --copy write into an existing non-empty DIR/recipes.")
def recipes(copy_to, overwrite) -> None:
    """List the recipes shipped with rocoft-llm, or copy them out to edit and run them."""
    from .shipped import copy_recipes, shipped, shipped_recipes

    if copy_to:
        target = copy_recipes(copy_to, overwrite=overwrite)
        click.echo(f"wrote {target}; run from {copy_to}, e.g.: rocoft-llm train recipes/tiny-llama-rows.yaml")
        return
    click.echo(f"shipped recipes (in {shipped('recipes')}):")
    for name, first_line in shipped_recipes().items():
        click.echo(f"  {name:32s} {first_line}")
