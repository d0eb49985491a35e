"""The ``rocoft-llm`` command line. Thin on purpose: parse, load the config, call one function."""

from __future__ import annotations

import logging
import sys
import typing

import click

from .cli_options import options_from
from .data.options import PrepareOptions
from .errors import RecipeError, RoCoFTError
from .rocoft.config import SELECTIONS, Mode
from .typed import validated
from .version import __version__

EXAMPLES = """
\b
Examples:
  rocoft-llm validate recipes/llama2-7b-math.yaml
  rocoft-llm prepare --recipe recipes/llama2-7b-math.yaml data.llm_adapters_dir=~/LLM-Adapters
  torchrun --nproc-per-node 8 -m rocoft_llm.cli train recipes/llama2-7b-math.yaml
  rocoft-llm eval --run runs/llama2-7b-math --tasks gsm8k,svamp --llm-adapters-dir ~/LLM-Adapters/dataset
  rocoft-llm merge --base meta-llama/Llama-2-7b-hf --adapter runs/llama2-7b-math/adapter --out merged/
  rocoft-llm slurm recipes/llama2-13b-math.yaml train.micro_batch_size=1 --nodes 2 --gpus-per-node 8
"""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    for noisy in ("transformers", "torch", "datasets", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class FriendlyGroup(click.Group):
    """Prints rocoft-llm's own errors as one clear message (exit 2) instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RoCoFTError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=FriendlyGroup, epilog=EXAMPLES)
@click.version_option(__version__, prog_name="rocoft-llm")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """rocoft-llm: finetune LLMs by training only r rows or r columns of each weight (RoCoFT).

    Every command takes local paths wherever it takes a Hub id, and nothing downloads unless you
    name a Hub id on a machine that reaches the Hub.
    """
    _setup_logging(verbose)


@main.command(
    epilog="""
\b
Examples:
  rocoft-llm validate recipes/llama2-13b-math.yaml
  rocoft-llm validate recipes/tiny-llama-rows.yaml train.lr=1e-4 rocoft.rank=8
  rocoft-llm validate recipes/llama2-7b-math.yaml --world-size 16 --strict
  rocoft-llm validate --explain train.lr          # what a key means, its type, default and range
  rocoft-llm validate --explain rocoft            # every key of a section ("" = the sections)
"""
)
@click.argument("recipe", type=click.Path(dir_okay=False), required=False)
@click.argument("overrides", nargs=-1)
@click.option(
    "--world-size",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of GPUs/processes the run will use (for the gradient-accumulation arithmetic).",
)
@click.option("--strict", is_flag=True, help="Treat unreachable model configs and data files as errors.")
@click.option(
    "--explain",
    "explain_key",
    metavar="KEY",
    help="Print the documentation of a recipe key or section "
    "(its type, default and constraints) and exit; no RECIPE needed.",
)
def validate(
    recipe: str | None, overrides: tuple[str, ...], world_size: int, strict: bool, explain_key: str | None
) -> None:
    """Check RECIPE (with KEY=VALUE OVERRIDES) and print the resolved recipe, or EVERY problem (exit 2).

    Rank-versus-dimension checks read the model config from a local directory, the HF cache, or
    rocoft-llm's table of the paper's models (Llama-2-7B/13B, BLOOMZ-7B1, GPT-J-6B); when neither
    the model nor a data file can be reached offline, those checks are skipped with a warning.
    Data files that can be reached are read as `prepare` reads them.
    """
    from .config import dump_recipe, load_recipe

    if explain_key is not None:
        from .config.explain import explain

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
    click.echo(dump_recipe(resolved), nl=False)


@main.command(
    epilog="""
\b
Examples:
  rocoft-llm train recipes/tiny-llama-rows.yaml                       # CPU, a couple of minutes
  rocoft-llm train recipes/tiny-llama-rows.yaml train.max_steps=5 rocoft.mode=column --overwrite
  torchrun --nproc-per-node 8 -m rocoft_llm.cli train recipes/llama2-13b-math.yaml
  rocoft-llm train recipes/llama2-7b-math.yaml train.resume=auto      # continue after preemption
"""
)
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output.dir (never done silently).")
def train(recipe: str, overrides: tuple[str, ...], overwrite: bool) -> None:
    """Finetune with the RECIPE (KEY=VALUE OVERRIDES apply on top): RoCoFT, LoRA or full.

    One process, or several under torchrun / the deepspeed launcher with dist.backend ddp, fsdp
    (FSDP2) or deepspeed (ZeRO 0-3). On SIGTERM/SIGUSR1 all ranks save a checkpoint at the next
    step boundary and exit with code 75; rerun with train.resume=auto to continue.
    """
    from .distributed import shutdown_distributed
    from .train.loop import Preempted
    from .train.run import train as run_train

    try:
        out = run_train(recipe, list(overrides), overwrite=overwrite)
    except Preempted as e:  # every rank agreed to stop and saved: they leave together
        shutdown_distributed()
        click.echo(str(e), err=True)
        sys.exit(75)
    shutdown_distributed()
    click.echo(f"run written to {out} (adapter, metrics.jsonl, loss_curve.png, summary.json)")


@main.command(
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
@click.option("--mode", type=click.Choice(typing.get_args(Mode)), default="row", show_default=True)
@click.option("--rank", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--selection",
    type=click.Choice(SELECTIONS),
    default="max",
    show_default=True,
    help="Wanda-scored max/min/mixed, or first/random.",
)
@click.option(
    "--targets", default=None, help="Comma-separated linear names (default: the architecture table's)."
)
@click.option("--seed", default=0, show_default=True, type=int)
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
    from .modeling import load_model, load_tokenizer
    from .rocoft.apply import RoCoFTConfig
    from .select_indices import select_to_file

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
        overwrite=overwrite,
    )
    click.echo(
        f"wrote {out}: {len(result['modules'])} modules, {selection} {mode}s, rank {rank}, "
        f"{result['calibration']['tokens']:,} calibration tokens"
    )


@main.command(
    epilog="""
\b
Examples:
  # LLM-Adapters files (a checkout or a copy with <task>/test.json and ft-training_set/):
  rocoft-llm prepare --dataset math --llm-adapters-dir ~/LLM-Adapters --tokenizer meta-llama/Llama-2-7b-hf \\
      --out data/math_10k-llama2
  rocoft-llm prepare --dataset data/commonsense_170k.json --tokenizer ./llama2 --out data/cs170k
  # original datasets (Hub ids online; --hub-dir DIR/<id>/<split>.jsonl offline), gold rationales:
  rocoft-llm prepare --dataset math_gold --from hub --tokenizer ./llama2 --out data/math_gold
  # look before you train: 3 rendered examples with the loss mask
  rocoft-llm prepare --dataset gsm8k --split test --llm-adapters-dir ../shared/data/llm_adapters \\
      --tokenizer ./llama2 --no-train-on-inputs --preview 3
  # from a recipe's data section:
  rocoft-llm prepare --recipe recipes/llama2-7b-math.yaml data.llm_adapters_dir=~/LLM-Adapters
"""
)
@click.option(
    "--recipe",
    type=click.Path(exists=True, dir_okay=False),
    help="Take the options from this recipe's "
    "data section and tokenizer; options given here apply on top of it (as data.KEY=VALUE overrides).",
)
@click.argument("overrides", nargs=-1)
@options_from(
    PrepareOptions,
    [
        "datasets",
        "tokenizer_path",
        "split",
        "source",
        "llm_adapters_dir",
        "hub_dir",
        "test_dir",
        "template",
        "cutoff_len",
        "train_on_inputs",
        "add_eos",
        "overlength",
        "bad_records",
        "num_proc",
    ],
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Output directory (default: a cache dir keyed by the inputs).",
)
@click.option(
    "--preview",
    default=0,
    type=click.IntRange(min=0),
    help="Print N rendered examples with the loss mask and exit without writing.",
)
@click.option("--overwrite", is_flag=True, help="Rebuild even if --out holds a prepared dataset.")
@click.pass_context
def prepare(ctx, recipe, overrides, out, preview, overwrite, **given) -> None:
    """Build tokenized instruction data (records, tokenized dataset, manifest) once, cached by its inputs."""
    from .data.prepare import prepare as run_prepare
    from .data.prepare import summarize_manifest

    given["datasets"] = list(given["datasets"] or [])
    on_command_line = {
        k: v
        for k, v in given.items()
        if ctx.get_parameter_source(k) is click.core.ParameterSource.COMMANDLINE
    }
    if recipe:
        from .config.prepare_options import prepare_options_from_recipe

        opts = prepare_options_from_recipe(recipe, list(overrides), on_command_line)
    else:
        if overrides:
            raise click.UsageError(f"KEY=VALUE overrides {list(overrides)} need --recipe.")
        if not given["datasets"] or not given["tokenizer_path"]:
            raise click.UsageError("pass --dataset and --tokenizer (or --recipe).")
        opts = validated(PrepareOptions, given, "command line")
    if preview:
        from .data.preview import preview as render_preview
        from .data.sources import resolve_source
        from .data.templates import get_template
        from .modeling import load_tokenizer

        src = resolve_source(opts.datasets[0], opts.split, opts.source, opts.llm_adapters_dir, opts.hub_dir)
        records = [{**r, "source": src.name} for r in src.records[:preview]]
        click.echo(
            render_preview(
                records,
                load_tokenizer(opts.tokenizer_path),
                get_template(opts.template),
                preview,
                opts.cutoff_len,
                opts.train_on_inputs,
                opts.add_eos,
            )
        )
        return
    path, manifest = run_prepare(opts, out=out, overwrite=overwrite)
    click.echo(summarize_manifest(path, manifest))


from .cli_eval import eval_cmd, score  # noqa: E402  (evaluation and re-scoring)
from .cli_models import convert_gguf, export_gguf, fetch_model  # noqa: E402  (getting real models)
from .cli_slurm import slurm  # noqa: E402  (rendering and submitting SLURM jobs)
from .cli_tools import doctor, export_peft, merge, recipes  # noqa: E402  (commands that take no recipe options)

for _command in (
    eval_cmd,
    score,
    slurm,
    doctor,
    merge,
    export_peft,
    recipes,
    fetch_model,
    convert_gguf,
    export_gguf,
):
    main.add_command(_command)


if __name__ == "__main__":
    main()
