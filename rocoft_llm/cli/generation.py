"""``rocoft-llm generate``: try a trained model on a prompt, the reply streamed as it is generated."""

from __future__ import annotations

import sys

import click

from ..eval.decoding import Sampling
from .options import model_dtype, options_from, prompt_and_dtype_options


@click.command(
    epilog="""
\b
Examples:
  rocoft-llm generate --run runs/tiny-demo --prompt "is 7 greater than 3?"
  rocoft-llm generate --run runs/llama2-7b-math                 # interactive: one prompt per line
  rocoft-llm generate --model ./llama-2-7b --adapter exports/x-lora --prompt-file question.txt
  rocoft-llm generate --model merged/x --prompt "2 + 2 =" --temperature 0.7 --top-p 0.9
  echo "what is 12 * 3?" | rocoft-llm generate --run runs/x > reply.txt
""",
)
@click.option(
    "--run", "run_dir", type=click.Path(exists=True, file_okay=False), help="A training output directory."
)
@click.option("--model", "model_path", help="Base or merged model: HF directory or Hub id.")
@click.option(
    "--adapter",
    type=click.Path(exists=True, file_okay=False),
    help="A RoCoFT adapter or a peft LoRA directory (export-peft); its base is --model, else the one it names.",
)
@click.option("--prompt", "prompts", multiple=True, help="The instruction to answer (repeat for several).")
@click.option(
    "--prompt-file",
    type=click.File("r", encoding="utf-8"),
    help="A file whose whole text is one instruction ('-' = stdin).",
)
@prompt_and_dtype_options
@options_from(Sampling)
@click.option("--show-prompt", is_flag=True, help="Print the rendered prompt (to stderr) before each reply.")
def generate(
    run_dir,
    model_path,
    adapter,
    prompts,
    prompt_file,
    template,
    chat_template,
    max_new_tokens,
    temperature,
    top_p,
    seed,
    dtype,
    show_prompt,
) -> None:
    """Answer prompts with a run, an adapter, a peft export or a merged model, streaming the reply.

    The prompt is rendered with the run's template exactly as `eval` renders a test item, and decoded
    greedily unless --temperature is given. Without --prompt or --prompt-file, each line read from
    stdin is one prompt (interactive on a terminal; "exit" or Ctrl-D ends). The reply goes to stdout,
    everything else to stderr.
    """
    from ..distributed import device_for_rank
    from ..eval.interactive import (
        interactive_prompts,
        load_for_generate,
        reply,
        reply_note,
    )

    if run_dir is None and model_path is None and adapter is None:
        raise click.UsageError("pass --run RUN, or --model MODEL (optionally with --adapter DIR).")
    if prompts and prompt_file:
        raise click.UsageError("pass --prompt or --prompt-file, not both.")
    if prompt_file is not None:
        todo = [prompt_file.read()]
        if not todo[0].strip():
            raise click.UsageError(f"--prompt-file {prompt_file.name} is empty; write the instruction in it.")
    elif prompts:
        todo = list(prompts)
    else:
        terminal = sys.stdin.isatty()
        ask = (lambda: click.echo("> ", nl=False, err=True)) if terminal else None
        todo = interactive_prompts(sys.stdin, ask)
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    device = device_for_rank()
    dtype = model_dtype(dtype, device)
    net, tok, prompting, described = load_for_generate(
        model_path, adapter, run_dir, template, dtype, str(device), chat_template
    )
    how = "greedy" if not sampling.temperature else f"temperature {temperature}, top-p {top_p}, seed {seed}"
    click.echo(
        f"{described}: template {prompting.template}, {how}, at most {max_new_tokens} new tokens", err=True
    )

    def write(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    try:
        for instruction in todo:
            if show_prompt:
                click.echo(prompting.render(tok, instruction), err=True)
            result, seconds = reply(net, tok, instruction, prompting, sampling, write)
            click.echo()
            click.echo(reply_note(result, seconds, sampling), err=True)
    except KeyboardInterrupt:  # Ctrl-C ends the interactive prompt loop (or a long reply) without a traceback
        click.echo("\n[interrupted]", err=True)
        sys.exit(130)
