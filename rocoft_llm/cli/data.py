"""Data: ``prepare`` builds tokenized instruction data once, cached by its inputs."""

from __future__ import annotations

import click

from ..data.settings import PrepareOptions
from ..strict_settings import validated
from .options import RecipeFile, options_from


@click.command(
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
  # chat records (messages / ShareGPT) through the model's own chat template, loss tokens bracketed:
  rocoft-llm prepare --dataset chats.jsonl --tokenizer ./smollm2 --template chat --preview 2 \\
      --preview-brackets loss
  # from a recipe's data section:
  rocoft-llm prepare --recipe recipes/llama2-7b-math.yaml data.llm_adapters_dir=~/LLM-Adapters
"""
)
@click.option(
    "--recipe",
    type=RecipeFile(),
    help="Take the options from this recipe (a file, or a shipped recipe's name) - its "
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
        "format",
        "template",
        "chat_template",
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
@click.option(
    "--preview-brackets",
    type=click.Choice(["masked", "loss"]),
    default="masked",
    show_default=True,
    help="With --preview: wrap the masked tokens in ⟦ ⟧, or the tokens that carry loss.",
)
@click.option("--overwrite", is_flag=True, help="Rebuild even if --out holds a prepared dataset.")
@click.pass_context
def prepare(ctx, recipe, overrides, out, preview, preview_brackets, overwrite, **given) -> None:
    """Build tokenized instruction data (records, tokenized dataset, manifest) once, cached by its inputs."""
    from ..data.prepare import prepare as run_prepare
    from ..data.prepare import summarize_manifest

    given["datasets"] = list(given["datasets"] or [])
    on_command_line = {
        k: v
        for k, v in given.items()
        if ctx.get_parameter_source(k) is click.core.ParameterSource.COMMANDLINE
    }
    if recipe:
        from ..config.prepare_options import prepare_options_from_recipe

        opts = prepare_options_from_recipe(recipe, list(overrides), on_command_line)
    else:
        if overrides:
            raise click.UsageError(f"KEY=VALUE overrides {list(overrides)} need --recipe.")
        if not given["datasets"] or not given["tokenizer_path"]:
            raise click.UsageError("pass --dataset and --tokenizer (or --recipe).")
        opts = validated(PrepareOptions, given, "command line")
    if preview:
        from ..data.preview import preview_dataset
        from ..model_loading import load_tokenizer

        tokenizer = load_tokenizer(opts.tokenizer_path)
        click.echo(preview_dataset(opts, preview, tokenizer, preview_brackets))
        return
    path, manifest = run_prepare(opts, out=out, overwrite=overwrite)
    click.echo(summarize_manifest(path, manifest))
