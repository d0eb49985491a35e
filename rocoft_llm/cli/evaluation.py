"""``rocoft-llm eval`` and ``score``: generation / lm-eval evaluation of a run, an adapter or a base model,
and re-scoring saved responses."""

from __future__ import annotations

import gc
import json

import click

from ..eval.decoding import Decoding
from .options import model_dtype, prompt_and_dtype_options


def _default(key: str) -> str:
    """A decoding default as declared once (:class:`rocoft_llm.eval.decoding.Decoding`)."""
    return str(Decoding.model_fields[key].default)


@click.command(
    "eval",
    epilog="""
\b
Examples:
  rocoft-llm eval --run runs/llama2-7b-math --tasks gsm8k,svamp,aqua --llm-adapters-dir ~/LLM-Adapters
  rocoft-llm eval --model ./llama-2-7b --adapter runs/x/adapter --tasks boolq,piqa --batch-size 16
  rocoft-llm eval --run runs/tiny-llama-rows --tasks recipes/tiny/data/arith/test.json --with-base
  torchrun --nproc-per-node 8 -m rocoft_llm.cli eval --run runs/x --tasks boolq   # data-parallel
  rocoft-llm eval --run runs/x --harness lm-eval --tasks boolq,gsm8k,svamp --llm-adapters-dir DIR
  rocoft-llm eval --metric nll --run runs/x --with-base --tasks ../shared/data/llm_adapters/ft-training_set/math_data.json:test
  rocoft-llm eval --metric nll --run runs/rows --versus runs/lora --tasks math_data.json:validation
""",
)
@click.option("--model", "model_path", help="Base model: HF directory or Hub id.")
@click.option("--adapter", type=click.Path(exists=True, file_okay=False), help="RoCoFT adapter directory.")
@click.option(
    "--run", "run_dir", type=click.Path(exists=True, file_okay=False), help="A training output directory."
)
@click.option(
    "--tasks",
    help="Comma-separated task ids (boolq, ARC-Easy, gsm8k, ...), test files or prepared test "
    "dirs. Default with --run: the run recipe's eval.tasks.",
)
@click.option(
    "--llm-adapters-dir",
    help="A clone of github.com/AGI-Edgerunners/LLM-Adapters (test sets in its dataset/ folder), that "
    "dataset/ folder, or a flat copy; or $ROCOFT_LLM_ADAPTERS_DIR.",
)
@click.option(
    "--harness", type=click.Choice(["generation", "lm-eval"]), default="generation", show_default=True
)
@click.option(
    "--num-beams",
    type=click.IntRange(min=1),
    help="1 = greedy. Default: the run recipe's eval.num_beams, else " + _default("num_beams") + ".",
)
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    help="Default: the run recipe's eval.max_new_tokens, else 32 commonsense / 256 math (protocol).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Default: the run recipe's eval.batch_size, else " + _default("batch_size") + ".",
)
@click.option(
    "--limit", type=click.IntRange(min=1), help="Only the first N examples of each task (smoke tests)."
)
@click.option(
    "--out", type=click.Path(file_okay=False), help="Output directory (default: RUN/eval or ./eval-out)."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier evaluation of the same kind in the output directory (refused without it; "
    "--out DIR writes beside it instead).",
)
@prompt_and_dtype_options
@click.option(
    "--apply-chat-template/--no-apply-chat-template",
    default=None,
    help="With --harness lm-eval: lm-eval's apply_chat_template (default: on when the template is chat).",
)
@click.option(
    "--fewshot-as-multiturn",
    is_flag=True,
    help="With --harness lm-eval: few-shot examples as chat turns (lm-eval's fewshot_as_multiturn).",
)
@click.option(
    "--with-base", is_flag=True, help="Also evaluate the base model and print a before/after table."
)
@click.option(
    "--score-all",
    is_flag=True,
    help="Score every test item, also those the run trained on (default with "
    "--run: held-out mode - items whose question is in the run's training data are excluded and counted).",
)
@click.option("--loglik-only", is_flag=True, help="With --harness lm-eval: only the log-likelihood tasks.")
@click.option(
    "--metric",
    type=click.Choice(["accuracy", "nll"]),
    default="accuracy",
    show_default=True,
    help="accuracy: generate and score answers; nll: held-out negative log-likelihood of the gold "
    "responses per target token, perplexity, bootstrap intervals and paired differences.",
)
@click.option(
    "--versus",
    "versus_run",
    type=click.Path(exists=True, file_okay=False),
    help="With --metric nll: a second training run scored on the same records (paired difference).",
)
@click.option(
    "--nll-targets",
    type=click.Choice(["recipe", "response", "all"]),
    default="recipe",
    show_default=True,
    help="With --metric nll: target tokens - as the run's data.train_on_inputs masks them (recipe; "
    "response without a run), the response (+ EOS) only, or prompt + response.",
)
@click.option(
    "--full-precision-base",
    is_flag=True,
    help="An adapter trained on a quantized base (model.quantize): load that base unquantized instead "
    "- what serving the adapter on the full-precision model costs (differs by the quantization error).",
)
@click.option(
    "--bootstrap", type=click.IntRange(min=100), default=1000, show_default=True, help="Bootstrap resamples."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Bootstrap seed (deterministic intervals)."
)
def eval_cmd(
    model_path,
    adapter,
    run_dir,
    tasks,
    llm_adapters_dir,
    harness,
    num_beams,
    max_new_tokens,
    batch_size,
    limit,
    out,
    overwrite,
    dtype,
    template,
    chat_template,
    apply_chat_template,
    fewshot_as_multiturn,
    with_base,
    score_all,
    loglik_only,
    metric,
    versus_run,
    nll_targets,
    full_precision_base,
    bootstrap,
    seed,
) -> None:
    """Evaluate with the LLM-Adapters protocol (both scorers) or lm-evaluation-harness.

    Tasks: ids, split parts (boolq:heldout), test files or prepared test dirs. With --run, test
    items seen in training are excluded when the run's data overlaps the test set (summary says so).
    """
    from pathlib import Path

    from ..distributed import device_for_rank, init_distributed, is_main, shutdown_distributed
    from ..eval.heldout import policy_for_run
    from ..eval.identity import load_for_eval, run_recipe
    from ..eval.outputs import check_eval_target
    from ..eval.run import evaluate
    from ..eval.tables import render_tables
    from ..eval.task_check import check_task_specs
    from ..io_utils import check_output_folder

    init_distributed("ddp", 60)
    device = device_for_rank()
    dtype = model_dtype(dtype, device)
    # defaults come from the run's recipe (its eval section and training template), then the protocol
    recipe = run_recipe(Path(run_dir)) if run_dir else {"eval": {}, "data": {}}
    task_list = (
        [t.strip() for t in tasks.split(",") if t.strip()]
        if tasks
        else list(recipe["eval"].get("tasks") or [])
    )
    # normalised and checked writable before any model is loaded or any answer generated
    out_dir = check_output_folder(out or (Path(run_dir) / "eval" if run_dir else "eval-out"), "--out")
    if metric == "nll":
        from ..eval.nll_cli import nll_command

        if harness != "generation":
            raise click.UsageError("--metric nll computes the likelihood itself; drop --harness.")
        if not tasks:
            raise click.UsageError(
                "--metric nll needs --tasks: a JSON file or split part (math_data.json:test)."
            )
        check_eval_target(out_dir / "nll", "generation", overwrite)
        if template or chat_template:  # the target tokens under the template asked for
            given = {"template": template, "chat_template": chat_template}
            recipe = {**recipe, "data": {**recipe["data"], **{k: v for k, v in given.items() if v}}}
        click.echo(
            nll_command(
                model_path,
                adapter,
                run_dir,
                versus_run,
                with_base,
                task_list,
                nll_targets,
                batch_size,
                limit,
                out_dir,
                dtype,
                device,
                llm_adapters_dir,
                bootstrap,
                seed,
                recipe,
                full_precision_base,
            )
        )
        shutdown_distributed()
        return
    if versus_run:
        raise click.UsageError("--versus is for --metric nll.")
    if not task_list:
        raise click.UsageError("pass --tasks (or --run with a recipe whose eval.tasks is set).")
    settings = {
        "num_beams": num_beams,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "template": template,
        "chat_template": chat_template,
    }
    fallback = {
        **recipe["eval"],
        "template": recipe["data"].get("template"),
        "chat_template": recipe["data"].get("chat_template"),
    }
    # each setting: the flag, else the run recipe's, else Decoding's declared default
    chosen = {k: v if v is not None else fallback.get(k) for k, v in settings.items()}
    decoding = Decoding(**{k: v for k, v in chosen.items() if v is not None})
    check_task_specs(task_list, harness, llm_adapters_dir)  # seconds, before minutes of model loading
    variants = ([True] if with_base else []) + [False]
    for base_only in variants:  # seconds, before minutes of model loading
        check_eval_target(out_dir / ("base" if base_only else "adapted"), harness, overwrite)
    heldout = policy_for_run(run_dir, score_all)
    tables = {}
    for base_only in variants:
        model, tok, identity, flags = load_for_eval(
            model_path,
            adapter,
            run_dir,
            dtype,
            str(device),
            base_only,
            full_precision_base,
            decoding.template,
            decoding.chat_template,
        )
        target = out_dir / ("base" if base_only else "adapted")
        if harness == "lm-eval":
            from ..eval.harness import run_harness

            summaries = run_harness(
                model,
                tok,
                task_list,
                target,
                identity,
                llm_adapters_dir,
                limit,
                decoding.batch_size,
                flags,
                heldout,
                loglik_only,
                decoding.template == "chat" if apply_chat_template is None else apply_chat_template,
                fewshot_as_multiturn,
                decoding.chat_template,
            )
        else:
            summaries = evaluate(
                model,
                tok,
                task_list,
                decoding,
                target,
                identity,
                flags,
                llm_adapters_dir,
                limit,
                heldout=heldout,
            )
        tables["before" if base_only else "after"] = summaries
        del model, tok  # the base must be gone before the adapted model loads (two 7B copies do not fit)
        gc.collect()
    if is_main():
        click.echo(render_tables(tables, out_dir))
    shutdown_distributed()


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm score --task gsm8k --predictions runs/x/eval/adapted/gsm8k.jsonl
  rocoft-llm score --task gsm8k --predictions other_tool.jsonl --test-file LLM-Adapters/dataset/gsm8k/test.json
"""
)
@click.option(
    "--task", required=True, help="Task id (decides the scorer) or an LLM-Adapters-format test file."
)
@click.option(
    "--predictions",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="JSONL with 'response' and 'answer', or 'response' and 'index' (joined with the test file).",
)
@click.option(
    "--test-file", type=click.Path(exists=True, dir_okay=False), help="Test file for 'index' joins."
)
@click.option(
    "--llm-adapters-dir",
    help="A clone of github.com/AGI-Edgerunners/LLM-Adapters (or its dataset/ folder), for 'index' joins "
    "by task id.",
)
def score(task, predictions, test_file, llm_adapters_dir) -> None:
    """Score saved responses with the same scorers as eval (works on other tools' outputs)."""
    from ..eval.rescore import rescore
    from ..eval.tables import markdown_table

    summary = rescore(task, predictions, test_file, llm_adapters_dir)
    click.echo(markdown_table([summary], f"{predictions}"))
    click.echo(json.dumps(summary, indent=1))
