"""Training: ``train`` (a recipe, on one process or under torchrun) and ``select`` (compute the
RoCoFT rows/columns to train once, from activation scores)."""

from __future__ import annotations

import sys

import click

from ..rocoft.config import SELECTIONS, RoCoFTConfig
from .options import RecipeFile, options_from


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm train recipes/tiny-llama-rows.yaml                       # CPU, 144 steps
  rocoft-llm train recipes/tiny-llama-rows.yaml train.max_steps=5 rocoft.mode=column --overwrite
  torchrun --nproc-per-node 8 -m rocoft_llm.cli train recipes/llama2-13b-math.yaml
  rocoft-llm train recipes/llama2-7b-math.yaml train.resume=auto      # continue after preemption
"""
)
@click.argument("recipe", type=RecipeFile())
@click.argument("overrides", nargs=-1)
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output.dir (never done silently).")
def train(recipe: str, overrides: tuple[str, ...], overwrite: bool) -> None:
    """Finetune with the RECIPE (KEY=VALUE OVERRIDES apply on top): RoCoFT, LoRA or full.

    One process, or several under torchrun / the deepspeed launcher with dist.backend ddp, fsdp
    (FSDP2) or deepspeed (ZeRO 0-3). On SIGTERM/SIGUSR1 all ranks save a checkpoint at the next
    step boundary and exit with code 75; rerun with train.resume=auto to continue.
    """
    from ..distributed import is_main, shutdown_distributed
    from ..train.loop import Preempted
    from ..train.run import train as run_train

    try:
        out = run_train(recipe, list(overrides), overwrite=overwrite)
    except Preempted as e:  # every rank agreed to stop and saved: they leave together
        shutdown_distributed()
        click.echo(str(e), err=True)
        sys.exit(75)
    writer = is_main()  # only rank 0 wrote summary.json (other nodes may not see output.dir at all)
    shutdown_distributed()
    if writer:
        click.echo(
            f"run written to {out} ({product_folder(out)}/, metrics.jsonl, loss_curve.png, summary.json)"
        )


def product_folder(run) -> str:
    """The folder holding the run's product, as its method names it (adapter, lora_adapter, model)."""
    from pathlib import Path

    from ..io_utils import read_json
    from ..methods import get_method

    summary = read_json(Path(run) / "summary.json", "the run's summary", "run the training again")
    return get_method(summary.get("method")).output_folder


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm select --model meta-llama/Llama-2-7b-hf --calibration data/math_10k.json \\
      --mode row --rank 3 --selection max --out runs/indices-7b-max.json --dtype bfloat16 --device cuda
  # then in the recipe:  rocoft: {selection: max, indices_file: runs/indices-7b-max.json}
"""
)
@click.option("--model", "model_path", required=True, help="Hub id or local model directory.")
@click.option(
    "--calibration",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="LLM-Adapters JSON file (array of {instruction, input, output, answer}) used as calibration text.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Indices JSON to write.")
@options_from(RoCoFTConfig, ["mode", "rank", "seed"])
@click.option(
    "--selection",
    type=click.Choice(SELECTIONS),
    default="max",
    show_default=True,
    help="Wanda-scored max/min/mixed, or first/random (the default is max, not the recipe's first: "
    "this command exists for the scored selections).",
)
@click.option(
    "--targets", default=None, help="Comma-separated linear names (default: the architecture table's)."
)
@click.option("--num-batches", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--max-length", default=256, show_default=True, type=click.IntRange(min=8))
@click.option("--template", default="llm_adapters", show_default=True)
@click.option(
    "--dtype", type=click.Choice(["bfloat16", "float16", "float32"]), default="bfloat16", show_default=True
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--tokenizer", default=None, help="Tokenizer id or path if not the model's.")
@click.option(
    "--random-init", is_flag=True, help="Build the model from its config with random weights (testing)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def select(
    model_path,
    calibration,
    out,
    mode,
    rank,
    selection,
    targets,
    seed,
    num_batches,
    batch_size,
    max_length,
    template,
    dtype,
    device,
    tokenizer,
    random_init,
    overwrite,
) -> None:
    """Compute the rows/columns to train ONCE (Wanda scores on calibration text) and write them to --out."""
    from ..io_utils import check_output_file
    from ..model_loading import load_model, load_tokenizer
    from ..scored_indices import select_to_file

    out = check_output_file(out, overwrite)  # the one check, before the model is loaded
    cfg = RoCoFTConfig(
        mode=mode,
        rank=rank,
        selection=selection,
        seed=seed,
        targets=[t.strip() for t in targets.split(",")] if targets else None,
    )
    tok = load_tokenizer(tokenizer or model_path)
    model = load_model(model_path, dtype=dtype, random_init=random_init, device=device)
    result = select_to_file(
        model,
        tok,
        calibration,
        out,
        cfg,
        model_name=model_path,
        num_batches=num_batches,
        batch_size=batch_size,
        max_length=max_length,
        template=template,
    )
    click.echo(
        f"wrote {out}: {len(result['modules'])} modules, {selection} {mode}s, rank {rank}, "
        f"{result['calibration']['tokens']:,} calibration tokens"
    )
