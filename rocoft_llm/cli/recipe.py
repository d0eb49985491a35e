"""Recipes: ``validate`` (check a recipe, explain its keys) and ``recipes`` (list or copy the shipped
ones)."""

from __future__ import annotations

import math
import sys

import click

from ..errors import RecipeError
from .options import RecipeFile


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm validate recipes/llama2-13b-math.yaml
  rocoft-llm validate recipes/tiny-llama-rows.yaml train.lr=1e-4 rocoft.rank=8
  rocoft-llm validate recipes/llama2-7b-math.yaml --world-size 16 --strict
  rocoft-llm validate llama2-13b-math dist.backend=none dist.zero_stage=null model.quantize=nf4 --gpu-memory 24
  rocoft-llm validate --explain train.lr          # what a key means, its type, default and range
  rocoft-llm validate --explain rocoft            # every key of a section ("" = the sections)
"""
)
@click.argument("recipe", type=RecipeFile(), required=False)
@click.argument("overrides", nargs=-1)
@click.option(
    "--world-size",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of GPUs/processes the run will use (for the gradient-accumulation arithmetic).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Make every warning an error: a model, tokenizer or data source that cannot be checked on this "
    "machine (validate never uses the network: a Hub id must be in the local HF cache), a data file "
    "not there, a warmup as long as the run.",
)
@click.option(
    "--gpu-memory",
    type=click.FloatRange(min=0, min_open=True),
    callback=lambda ctx, param, value: finite_gib(value),
    metavar="GiB",
    help="Say whether the run fits a GPU of this many GiB (FITS / DOES NOT FIT, by the memory estimate); "
    "exit 0 either way, or 2 with --strict when it does not fit.",
)
@click.option(
    "--explain",
    "explain_key",
    metavar="KEY",
    help="Print the documentation of a recipe key or section "
    "(its type, default and constraints) and exit; no RECIPE needed.",
)
def validate(
    recipe: str | None,
    overrides: tuple[str, ...],
    world_size: int,
    strict: bool,
    gpu_memory: float | None,
    explain_key: str | None,
) -> None:
    """Check RECIPE (with KEY=VALUE OVERRIDES) and print the resolved recipe, or EVERY problem (exit 2).

    Rank-versus-dimension checks read the model config from a local directory, the HF cache, or
    rocoft-llm's table of the paper's models (Llama-2-7B/13B, BLOOMZ-7B1, GPT-J-6B); when neither
    the model nor a data file can be reached offline, those checks are skipped with a warning.
    Data files that can be reached are read as `prepare` reads them.

    Also prints an estimate of the memory per GPU (frozen weights, trainable values, gradients,
    optimizer state, activations of one micro-batch of train.micro_batch_size x data.cutoff_len
    tokens, the step's peak transient), computed from the model's shapes; it leaves out the CUDA
    context, the allocator's cache and fragmentation, and communication buffers.
    """
    from ..config import dump_recipe, load_recipe

    if explain_key is not None:
        from ..config.explain import explain

        click.echo(explain(explain_key), nl=False)
        return
    if recipe is None:
        raise click.UsageError("pass a RECIPE to check (or --explain KEY).")

    try:
        resolved, result = load_recipe(recipe, list(overrides), world_size=world_size, strict=strict)
    except RecipeError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    click.echo(f"# {recipe}: valid" + (f" with overrides {' '.join(overrides)}" if overrides else ""))
    for w in result.warnings:
        click.echo(f"# warning: {w}")
    for key, value in result.derived.items():
        click.echo(f"# {key}: {value:,}" if isinstance(value, int) else f"# {key}: {value}")
    fits = _print_memory(resolved, world_size, gpu_memory)
    click.echo(dump_recipe(resolved), nl=False)
    if fits is False and strict:
        click.echo(f"error: the run does not fit a {gpu_memory:g} GiB GPU (--strict)", err=True)
        sys.exit(2)


def finite_gib(value: float | None) -> float | None:
    """``--gpu-memory``: a finite size (click's range lets nan and inf through)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a size; give the GPU's memory in GiB, e.g. 24.")
    return value


def _print_memory(resolved, world_size: int, gpu_memory: float | None) -> bool | None:
    """Print the memory estimate as comment lines (the output stays a valid recipe); whether it fits
    ``gpu_memory`` GiB (None: not asked, or not estimated)."""
    from ..config.memory_estimate import estimate_for_recipe, estimate_lines, fit_line

    try:
        est, setup, checkpointed = estimate_for_recipe(resolved, world_size)
    except ValueError as e:
        click.echo(f"# memory: not estimated ({e})")
        return None
    for line in estimate_lines(est, setup, checkpointed):
        click.echo(f"# {line}")
    if gpu_memory is None:
        return None
    fits, line = fit_line(est, gpu_memory)
    click.echo(f"# {line}")
    return fits


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
    from ..shipped import copy_recipes, shipped, shipped_recipes

    if copy_to:
        target = copy_recipes(copy_to, overwrite=overwrite)
        click.echo(f"wrote {target}; run from {copy_to}, e.g.: rocoft-llm train recipes/tiny-llama-rows.yaml")
        return
    import shutil
    import textwrap

    click.echo(
        f"shipped recipes (in {shipped('recipes')}); pass one by name, e.g. rocoft-llm validate llama2-7b-math:"
    )
    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    for name, summary in shipped_recipes().items():  # the first sentence of each header, never cut
        click.echo(
            textwrap.fill(
                summary,
                width,
                initial_indent=f"  {name:30s} ",
                subsequent_indent=" " * 33,
                break_on_hyphens=False,
            )
        )
